"""What the test fixtures' export scripts share (export_reference_models.py,
export_pattern_models.py, make_qdq_model.py): the command line
`SCRIPT OUT_DIR [NAME...]`, files kept while newer than the script that
made them, and files written whole or not at all."""
import os
import sys


def up_to_date(path, script):
    """`path` was made by this version of `script`: exporting again gives the same."""
    return os.path.exists(path) and os.path.getmtime(path) >= os.path.getmtime(script)


def write_whole(path, write):
    """Calls write(tmp) and renames tmp to `path`: a half-written file never
    passes for a model."""
    tmp = path + ".part"
    write(tmp)
    os.replace(tmp, path)
    print(f"wrote {path}")


def main(doc, models, export):
    """`SCRIPT OUT_DIR [NAME...]`: export(name, out_dir) for each name of
    `models` given (all by default) into OUT_DIR, created if missing."""
    if len(sys.argv) < 2:
        sys.exit(doc)
    out_dir = sys.argv[1]
    names = sys.argv[2:] or list(models)
    unknown = [n for n in names if n not in models]
    if unknown:
        sys.exit(f"unknown model(s) {', '.join(unknown)}; known: {', '.join(models)}")
    os.makedirs(out_dir, exist_ok=True)
    for name in names:
        export(name, out_dir)
