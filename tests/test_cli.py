"""The ``infersight`` command itself: version, usage errors, missing extras, and the messages
of ``infersight profile`` (each one names the file or flag, the value and the fix)."""

from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

import infersight
from infersight.cli import main
from tests.support.cli import run_cli


def test_version_is_the_package_version():
    r = subprocess.run(["infersight", "--version"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stdout == f"infersight {infersight.__version__}\n"
    assert infersight.__version__ == "0.1.0"


@pytest.fixture
def train_csv(tmp_path):
    rng = np.random.default_rng(1)
    lines = ["age,plan"] + [f"{a:.3f},{p}" for a, p in zip(rng.normal(40, 10, 300), rng.choice(["free", "pro"], 300))]
    path = tmp_path / "train.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize(
    "argv, usage",
    [
        (["drift", "ref.json", "data.csv", "--chunk-sise", "5"], "usage: infersight drift"),
        (["profile", "data.csv", "--model", "m", "--ouput", "x.json"], "usage: infersight profile"),
        (["processor", "--otlp-grcp", "127.0.0.1:0"], "usage: infersight processor"),
    ],
)
def test_a_mistyped_flag_shows_the_subcommands_usage(argv, usage, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert err.startswith(usage) and f"unrecognized arguments: {argv[-2]} {argv[-1]}" in err


def test_missing_parquet_extra_names_the_extra(tmp_path):
    (tmp_path / "train.parquet").write_bytes(b"PAR1")
    r = run_cli(
        "profile", str(tmp_path / "train.parquet"), "--model", "m", "-o", str(tmp_path / "r.json"), block=["pyarrow"]
    )
    assert r.returncode == 2, r.stderr
    assert r.stderr == (
        f"infersight profile: reading {str(tmp_path / 'train.parquet')!r} needs the Python package 'pyarrow', "
        "which is not installed; install it with: pip install 'infersight[parquet]'\n"
    )


def test_profile_into_a_missing_folder_names_the_folder(train_csv, tmp_path, capsys):
    out = tmp_path / "nope" / "ref.json"
    assert main(["profile", str(train_csv), "--model", "m", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert ".tmp" not in err
    assert f"the folder {str(out.parent)!r} does not exist; create it first" in err


def test_profile_errors_carry_no_stray_quotes(train_csv, tmp_path, capsys):
    assert main(["profile", str(train_csv), "--model", "m", "--target", "churned", "-o", str(tmp_path / "r.json")]) == 2
    assert (
        capsys.readouterr().err
        == "infersight profile: target column 'churned' is not in the data; it has ['age', 'plan']\n"
    )
    assert main(["profile", str(train_csv), "--model", "m", "--columns", "zip", "-o", str(tmp_path / "r.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("infersight profile: column(s) ['zip'] are not in the data") and not err.startswith(
        'infersight profile: "'
    )


def test_profile_says_it_replaced_a_file_and_help_names_the_default(train_csv, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["profile", str(train_csv), "--model", "m"]) == 0
    first = capsys.readouterr().out
    assert first.startswith("wrote reference.json: 300 rows") and "replaced" not in first
    assert json.loads((tmp_path / "reference.json").read_text())["model"] == "m"
    assert main(["profile", str(train_csv), "--model", "m2"]) == 0
    assert capsys.readouterr().out.startswith("wrote reference.json (replaced the file that was there): 300 rows")
    with pytest.raises(SystemExit):
        main(["profile", "--help"])
    assert "default ./reference.json, replaced if it exists" in " ".join(capsys.readouterr().out.split())


def test_malformed_and_header_only_csv_name_the_file(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text('a,b\n1,2\n3,"4\n5,6\n')
    assert main(["profile", str(bad), "--model", "m", "-o", str(tmp_path / "r.json")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"infersight profile: {str(bad)!r} is not a well-formed CSV file: ") and "fix the file" in err
    header = tmp_path / "header.csv"
    header.write_text("a,b\n")
    assert main(["profile", str(header), "--model", "m", "-o", str(tmp_path / "r.json")]) == 2
    assert capsys.readouterr().err == (
        f"infersight profile: data file {str(header)!r} has no rows (a header only?); a reference needs training data\n"
    )
    assert not (tmp_path / "r.json").exists()


def test_profile_run_as_the_program_freezes_its_objects_before_exit(train_csv, tmp_path, capsys, monkeypatch):
    # The interpreter's last collection at exit then skips what numpy and pyarrow made at
    # import; a caller passing its own argv (a test, a script) keeps its collector untouched.
    import gc

    gc.unfreeze()
    try:
        assert main(["profile", str(train_csv), "--model", "m", "-o", str(tmp_path / "a.json")]) == 0
        assert gc.get_freeze_count() == 0
        monkeypatch.setattr(
            "sys.argv", ["infersight", "profile", str(train_csv), "--model", "m", "-o", str(tmp_path / "b.json")]
        )
        assert main() == 0
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
    assert capsys.readouterr().out.count("wrote ") == 2
    assert json.loads((tmp_path / "b.json").read_text())["n_rows"] == 300
