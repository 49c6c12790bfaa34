"""The findings of the drift check, and the local accounts the templates are rendered with."""

from __future__ import annotations

from typing import Any

# The local accounts of the design, to render the templates as the emulator sees them.
LOCAL_ACCOUNTS = {"TestAccountId": "333333333333", "ProdAccountId": "444444444444", "AWS::AccountId": "222222222222"}
LOCAL_PSEUDO = {"AWS::Partition": "aws", "AWS::Region": "us-east-1"}


class Report:
    """Errors (drift) and notes. `section` names the check that is running, so that the output
    says which check found each error; the errors themselves stay plain messages."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.sections: list[str] = []  # the section of each error, in step with `errors`
        self.notes: list[str] = []
        self.section = ""

    def error(self, message: str) -> None:
        self.errors.append(message)
        self.sections.append(self.section)

    def expect(self, condition: bool, message: str) -> None:
        if not condition:
            self.error(message)

    def same(self, what: str, template_value: Any, expected: Any, source: str = "infra/names.json") -> None:
        if template_value != expected:
            self.error(f"{what}: the template says {template_value!r}, {source} says {expected!r}")
