"""ConfigError: every problem of a config, each as ``dotted.path: message``."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["ConfigError", "ConfigProblem"]


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One problem: where (dotted path, and the file line when known) and what."""

    path: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = self.path or "(config)"
        return f"{where}: {self.message}"


class ConfigError(ValueError):
    """A config that cannot be used. ``str(err)`` lists every problem, one a line."""

    def __init__(self, problems: list[ConfigProblem], *, source: str | None = None) -> None:
        self.problems = list(problems)
        self.source = source
        super().__init__("\n".join(str(p) for p in self.problems))

    @classmethod
    def single(
        cls, path: str, message: str, *, line: int | None = None, source: str | None = None
    ) -> ConfigError:
        return cls([ConfigProblem(path, message, line)], source=source)

    def render(self) -> str:
        """Human text with the file and line of each problem, for the CLI."""
        lines = []
        for p in self.problems:
            loc = ""
            if self.source and p.line is not None:
                loc = f"  ({self.source}, line {p.line})"
            elif p.line is not None:
                loc = f"  (line {p.line})"
            lines.append(f"{p}{loc}")
        return "\n".join(lines)
