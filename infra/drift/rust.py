"""What the drift check reads from the Rust code under shared/, found wherever it lives.

The library crates under shared/ move files around (a crate split, a module split); these
look-ups search every `shared/**/*.rs` (and `shared/**/stage-config.local.json`) rather than
fixed paths, so that a move breaks nothing, while two places disagreeing is reported.
"""

from __future__ import annotations

import re
from pathlib import Path

# A string literal passed to a call: `required("LEDGER_TABLE")`, `lookup("SOURCE_READ_ROLE_NAME")`.
VARIABLE_ARGUMENT = re.compile(r'\(\s*"([A-Z][A-Z0-9_]+)"')
# The configuration code proper: how a config type is read from the environment.
CONFIG_READER = re.compile(r"\bfn from_(env|lookup)\b")


def relative(root: Path, path: Path) -> str:
    return str(path.relative_to(root))


def sources(root: Path) -> list[Path]:
    """Every Rust source under shared/, build output aside."""
    return sorted(p for p in (root / "shared").glob("**/*.rs") if "target" not in p.relative_to(root).parts)


def impl_header(type_name: str) -> re.Pattern[str]:
    """`impl Type {`, `impl<T> Type<T> {`, `impl Trait for Type {` (any indentation); not an
    impl of another type that merely names this one (`impl From<Type> for Other`)."""
    return re.compile(
        rf"^([ \t]*)impl(?:<[^\n]*?>)?\s+(?:[^\n{{]*?\bfor\s+)?(?:\w+::)*{re.escape(type_name)}"
        rf"(?:<[^\n{{]*>)?\s*(?:where\b[^\n{{]*)?\{{[ \t]*$",
        re.M,
    )


def impl_blocks(root: Path, type_name: str) -> list[tuple[Path, str]]:
    """Every impl block of `type_name` under shared/: (file, body). A type's impl may be split
    over several blocks and files."""
    header = impl_header(type_name)
    blocks = []
    for path in sources(root):
        text = path.read_text()
        for match in header.finditer(text):
            end = re.compile(rf"^{match.group(1)}\}}", re.M).search(text, match.end())
            blocks.append((path, text[match.end(): end.start() if end else len(text)]))
    return blocks


def config_variables(root: Path, type_name: str) -> tuple[set[str], list[str]] | None:
    """The environment variables the impl blocks of a config type that read it (from_env,
    from_lookup) name, and those blocks' files; None if no such block exists."""
    blocks = [(path, body) for path, body in impl_blocks(root, type_name) if CONFIG_READER.search(body)]
    if not blocks:
        return None
    names = {name for _, body in blocks for name in VARIABLE_ARGUMENT.findall(body)}
    return names, sorted({relative(root, path) for path, _ in blocks})


def string_constants(root: Path, name: str) -> list[tuple[str, str]]:
    """Every `const NAME: &str = "...";` under shared/: (value, file)."""
    pattern = re.compile(rf'\bconst {re.escape(name)}: &(?:\'static )?str = "([^"]*)";')
    return [(value, relative(root, path)) for path in sources(root) for value in pattern.findall(path.read_text())]


def local_stage_configs(root: Path) -> list[Path]:
    """The emulator's stage settings, shared/**/stage-config.local.json (one is expected)."""
    return sorted(p for p in (root / "shared").glob("**/stage-config.local.json") if "target" not in p.relative_to(root).parts)
