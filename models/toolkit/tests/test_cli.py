"""The CLI: every subcommand has --help; user errors are one line on stderr and exit 1."""

import errno
import subprocess
import sys
import types

import pytest
import torch

from conftest import REPO
from styleclip_toolkit.cli import COMMANDS, main


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage:") and command in out


def test_a_subcommand_that_fails_to_import_shows_its_error(monkeypatch, capsys):
    monkeypatch.setitem(COMMANDS, "broken", ("no_such_module", "a module that does not exist"))
    with pytest.raises(ModuleNotFoundError, match="styleclip_toolkit.no_such_module"):
        main(["broken", "--out", "x"])
    for argv in (["--help"], ["stats", "--help"]):  # only the chosen subcommand's module is imported
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 0
    assert "broken" in capsys.readouterr().out


def _error_line(capsys, argv):
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 1
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    return err


def test_missing_checkpoint(capsys, tmp_path):
    err = _error_line(capsys, ["convert-generator", "--checkpoint", str(tmp_path / "G.pt"), "--out", str(tmp_path)])
    assert "checkpoint not found" in err


def test_unknown_format(capsys, tmp_path):
    err = _error_line(capsys, ["convert-generator", "--format", "nvidia-pkl", "--checkpoint", "x", "--out", "y"])
    assert "unknown --format 'nvidia-pkl'" in err
    err = _error_line(capsys, ["convert-mapper", "--format", "hairclip", "--checkpoint", "x", "--out", "y"])
    assert "supported: styleclip" in err


def test_malicious_checkpoint(capsys, tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"g_ema": Evil()}, tmp_path / "evil.pt")
    err = _error_line(capsys, ["convert-generator", "--checkpoint", str(tmp_path / "evil.pt"), "--out", str(tmp_path / "p")])
    assert "refusing to load" in err and "builtins.print" in err


def test_not_a_pack(capsys, tmp_path):
    err = _error_line(capsys, ["stats", "--pack", str(tmp_path)])
    assert "not a model pack" in err
    (tmp_path / "pack.json").write_text("{oops")
    assert "not valid JSON" in _error_line(capsys, ["stats", "--pack", str(tmp_path)])


def test_mapper_into_a_pack_without_generator(capsys, tmp_path):
    (tmp_path / "pack.json").write_text('{"format": "styleclip-pack", "version": 1}')
    torch.save({"state_dict": {}, "opts": {}}, tmp_path / "m.pt")
    err = _error_line(capsys, ["convert-mapper", "--checkpoint", str(tmp_path / "m.pt"), "--out", str(tmp_path)])
    assert "run convert-generator first" in err


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EDQUOT])
def test_a_full_disk_is_one_line_from_any_command(code, monkeypatch, capsys):
    raised = []

    def run(args):
        raise raised.pop()

    module = types.ModuleType("styleclip_toolkit.full_disk")
    module.add_arguments, module.run = (lambda parser: None), run
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setitem(COMMANDS, "full-disk", ("full_disk", "raises what the test hands it"))
    raised.append(OSError(code, "No space left on device", "/data/packs/ffhq/pack.json"))
    assert _error_line(capsys, ["full-disk"]) == ("error: no space left on device while writing "
                                                  "/data/packs/ffhq/pack.json: free some space and run again\n")
    raised.append(OSError(code, "No space left on device"))  # a write() names no file
    assert _error_line(capsys, ["full-disk"]) == "error: no space left on device: free some space and run again\n"
    raised.append(OSError(errno.EIO, "Input/output error"))  # other OS errors are not user errors
    with pytest.raises(OSError, match="Input/output error"):
        main(["full-disk"])


def test_usage_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        main(["convert-generator"])
    assert e.value.code == 2
    with pytest.raises(SystemExit) as e:
        main(["no-such-command"])
    assert e.value.code == 2
    assert main([]) == 2


def test_module_entry_point_prints_no_traceback(tmp_path):
    proc = subprocess.run(["bash", "scripts/toolkit.sh", "-m", "styleclip_toolkit", "convert-mapper",
                           "--checkpoint", str(tmp_path / "nope.pt"), "--out", str(tmp_path)],
                          cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [f"error: not a model pack: {tmp_path / 'pack.json'} is missing"]
