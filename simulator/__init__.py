"""The in-memory WeChat world, for testing bots without a WeChat account.

from simulator import SimulatedWeChat
world = SimulatedWeChat(seed=0)
"""

from simulator.recorder import Recorder
from simulator.world import (
    FAULT_KINDS,
    SimAccount,
    SimulatedPuppet,
    SimulatedWeChat,
    TranscriptEntry,
)

__all__ = [
    "FAULT_KINDS",
    "Recorder",
    "SimAccount",
    "SimulatedPuppet",
    "SimulatedWeChat",
    "TranscriptEntry",
]
