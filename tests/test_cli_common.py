"""The shared parser: values starting with '-' reach validation (one line, exit 2, nothing
written); flags, --help, --version and negative numbers behave as argparse's."""

import pytest

from sgdthermo.cli import build_parser, main
from sgdthermo.cli.common import Parser
from sgdthermo.errors import UsageError

TRAIN = ["--model", "mlp", "--dataset", "synthetic", "--protocol", "fixed-lr", "--iters", "10", "--wd", "0.01"]


def refused(argv, capsys, tmp_path):
    """Run argv; it must exit 2 with one line on stderr and write nothing; returns the line."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("sgdthermo: error: ") and err.count("\n") == 1, err
    assert "expected one argument" not in err
    assert list(tmp_path.iterdir()) == []
    return err.strip()


def test_isotropic_negative_spec_reaches_validation(tmp_path, capsys):
    err = refused(["isotropic", "--protocol", "fixed-lr", "--lr", "-0.01:0.1:3", "--wd", "0.01",
                   "--out", str(tmp_path / "o")], capsys, tmp_path)
    assert err == "sgdthermo: error: --lr '-0.01:0.1:3': LO and HI must be positive finite numbers"


def test_isotropic_negative_number_in_exponent_form(tmp_path, capsys):
    err = refused(["isotropic", "--protocol", "fixed-lr", "--lr", "-1e-3", "--wd", "0.01",
                   "--out", str(tmp_path / "o")], capsys, tmp_path)
    assert err == "sgdthermo: error: --lr -0.001: must be a positive finite number"
    err = refused(["isotropic", "--protocol", "fixed-lr", "--lr", "0.01", "--wd", "-inf",
                   "--out", str(tmp_path / "o")], capsys, tmp_path)
    assert "--wd -inf" in err


def test_sweep_negative_values(tmp_path, capsys):
    base = ["sweep", *TRAIN]
    err = refused(base + ["--lr", "-0.01", "--out", str(tmp_path / "o")], capsys, tmp_path)
    assert "--lr -0.01: must be a positive" in err
    err = refused(base + ["--lr", "-1e-3:1:3", "--out", str(tmp_path / "o")], capsys, tmp_path)
    assert "--lr '-1e-3:1:3'" in err


def test_train_negative_values(tmp_path, capsys):
    err = refused(["train", *TRAIN, "--lr", "-0.5", "--out", str(tmp_path / "o")], capsys, tmp_path)
    assert err == "sgdthermo: error: --lr -0.5: must be a positive finite number"
    err = refused(["train", *TRAIN, "--lr", "-5e-1", "--out", str(tmp_path / "o")], capsys, tmp_path)
    assert "--lr -0.5: must be a positive" in err
    err = refused(["train", *TRAIN[:-2], "--lr", "0.1", "--wd", "-1e-2", "--out", str(tmp_path / "o")],
                  capsys, tmp_path)
    assert "-0.01" in err


def test_negative_seed_is_still_a_value(tmp_path, capsys):
    args = build_parser().parse_args(["isotropic", "--protocol", "fixed-lr", "--lr", "0.01", "--wd", "0.01",
                                      "--seed", "-1", "--out", str(tmp_path / "o")])
    assert args.seed == -1 and args.lr == "0.01" and args.out == str(tmp_path / "o")
    # parsed as a value: the error is the next check's, not argparse's
    err = refused(["isotropic", "--protocol", "fixed-lr", "--lr", "0.01", "--wd", "0.01", "--dim", "1",
                   "--seed", "-1", "--out", str(tmp_path / "o")], capsys, tmp_path)
    assert "--dim 1" in err


def test_equals_form_and_abbreviations_still_work(tmp_path):
    p = build_parser()
    args = p.parse_args(["isotropic", "--protocol", "fixed-lr", "--lr=-0.01:0.1:3", "--wd", "-0.5",
                         "--di", "-2", "--out", str(tmp_path / "o")])
    assert (args.lr, args.wd, args.dim) == ("-0.01:0.1:3", "-0.5", -2)


def test_flags_and_options_after_an_option_are_left_alone(tmp_path):
    p = build_parser()
    args = p.parse_args(["isotropic", "--protocol", "fixed-lr", "--lr", "0.1", "--no-report", "--force",
                         "--out", str(tmp_path / "o")])
    assert args.no_report and args.force
    # an option where a value belongs is still argparse's error, without a misleading hint
    with pytest.raises(UsageError) as exc:
        p.parse_args(["isotropic", "--protocol", "fixed-lr", "--lr", "--out", str(tmp_path / "o")])
    assert str(exc.value) == "argument --lr: expected one argument"


def test_a_dash_word_gets_a_hint(tmp_path, capsys):
    assert main(["isotropic", "--protocol", "fixed-lr", "--lr", "0.1", "--wd", "0.1",
                 "--out", "-x"]) == 2
    err = capsys.readouterr().err
    assert err == ("sgdthermo: error: argument --out: expected one argument; for a value starting with '-' "
                   "write --out=VALUE\n")
    assert list(tmp_path.iterdir()) == []
    p = build_parser()
    for word in ("-1foo", "-x", "-1:"):  # not a number or SPEC: not taken as a value
        with pytest.raises(UsageError, match="expected one argument; for a value starting with '-' write"):
            p.parse_args(["isotropic", "--protocol", "fixed-lr", "--lr", word, "--out", str(tmp_path / "o")])


def test_help_and_version_exit_zero(capsys):
    for argv in (["isotropic", "--help"], ["sweep", "-h"], ["train", "--help"], ["--help"], ["--version"]):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 0, argv
    assert "sgdthermo" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:  # a help flag after an option taking a value: still help
        main(["isotropic", "--seed", "-1", "--help"])
    assert exc.value.code == 0


def test_double_dash_ends_the_rewriting():
    p = Parser(prog="p")
    p.add_argument("--x")
    p.add_argument("rest", nargs="*")
    args = p.parse_args(["--x", "-1:2:3", "--", "--x", "-4"])
    assert args.x == "-1:2:3" and args.rest == ["--x", "-4"]


def test_only_options_taking_one_value_are_rewritten():
    p = Parser(prog="p")
    p.add_argument("--pair", nargs=2)
    p.add_argument("--maybe", nargs="?", const="c")
    p.add_argument("--flag", action="store_true")
    p.add_argument("nums", nargs="*")
    args = p.parse_args(["--pair", "-1", "-2", "--maybe", "--flag", "-3"])
    assert args.pair == ["-1", "-2"] and args.maybe == "c" and args.flag and args.nums == ["-3"]
    assert p._join_dash_values(["--pair", "-1e-3:1:3"]) == ["--pair", "-1e-3:1:3"]
    assert p._join_dash_values(["--maybe", "-1e-3:1:3"]) == ["--maybe", "-1e-3:1:3"]
