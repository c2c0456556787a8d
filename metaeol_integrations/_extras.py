"""Clear ImportErrors for optional integrations."""

from __future__ import annotations


def missing_extra(extra: str, package: str) -> ImportError:
    """An ImportError that names the pip command installing ``extra``."""
    return ImportError(
        f'This integration needs {package}, which is not installed. Fix: pip install "metaeol-integrations[{extra}]"'
    )
