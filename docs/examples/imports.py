from simulator import SimulatedWeChat
from wechat_sdk import AgentTurn, Gateway, Reply, load_config
