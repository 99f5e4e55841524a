#!/usr/bin/env python3
"""Checks that every citation of the design document in the tracked files
names it by its path (docs/DESIGN.md) and cites sections it has.

Citations look like "docs/DESIGN.md section 6", "docs/DESIGN.md sections 5
and 6", "docs/DESIGN.md section 6, "Decomposed ops"" or, inside the
document, "§10". Sections are the document's "## N. Title" headings. Run by
tools/lint.sh (so by tools/test.sh and CI); exits 1 listing every bad
citation.
"""
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
DESIGN = ROOT / "docs" / "DESIGN.md"

# "DESIGN.md section 6", "DESIGN.md sections 5 and 6", "DESIGN.md sections 5, 6", "DESIGN.md's".
CITATION = re.compile(r"(\S*)DESIGN\.md(?:'s)?(?:\s+sections?\s+((?:\d+)(?:(?:,\s*|\s+and\s+)\d+)*))?")
SECTION_SIGN = re.compile(r"§\s*(\d+)")


def sections():
    return {int(m.group(1)) for m in re.finditer(r"^## (\d+)\. ", DESIGN.read_text(), re.M)}


def tracked_files():
    out = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True)
    return [ROOT / f for f in out.stdout.splitlines()]


def numbers(text):
    return [int(n) for n in re.findall(r"\d+", text or "")]


def main():
    known = sections()
    errors = []
    cited = 0
    for path in tracked_files():
        skip = path.suffix in {".onnx", ".png", ".pb", ".npy"} or path == pathlib.Path(__file__).resolve()
        if not path.is_file() or skip:
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        rel = path.relative_to(ROOT)
        for lineno, line in enumerate(text.splitlines(), 1):
            refs = []
            for m in CITATION.finditer(line):
                cited += 1
                prefix = m.group(1).strip("`(\"'[")
                if path != DESIGN and not prefix.endswith("docs/") and rel.parts[0] != "docs":
                    errors.append(f"{rel}:{lineno}: cite the design document as docs/DESIGN.md")
                refs += numbers(m.group(2))
            if path == DESIGN or rel.parts[0] == "docs":
                refs += numbers(" ".join(SECTION_SIGN.findall(line)))
            for n in refs:
                if n not in known:
                    errors.append(f"{rel}:{lineno}: docs/DESIGN.md has no section {n}")
    for e in errors:
        print(e, file=sys.stderr)
    if errors:
        return 1
    print(f"design references: {cited} citations, sections {min(known)}-{max(known)}, all resolve")
    return 0


if __name__ == "__main__":
    sys.exit(main())
