"""The lit-keras-convert and lit-keras-validate programs."""
import os
import re
import subprocess
import sys

from lit_keras_app.cli import convert as convert_cli
from lit_keras_app.cli import validate as validate_cli
from tests.data.test_records import _images


def test_cli(tmp_path, capsys):
  _images(tmp_path / "tree" / "a", 2)
  assert convert_cli.main(["--folder", str(tmp_path / "tree"), "--output_dir",
                       str(tmp_path / "o"), "--num_shards", "1", "--workers", "1"]) == 0
  assert "written 2, rejected 1" in capsys.readouterr().out
  assert validate_cli.main([str(tmp_path / "o" / "*.tfrecord")]) == 0
  assert "2 records, 2 decodable" in capsys.readouterr().out


def test_convert_help_explains_every_flag():
  """`lit-keras-convert --help`: each flag has a sentence and an example of its use."""
  exe = os.path.join(os.path.dirname(sys.executable), "lit-keras-convert")
  out = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=120).stdout
  flags = sorted(set(re.findall(r"\[?(--[a-z_]+)", out.split("\n\n")[0])) - {"--help"})
  assert len(flags) == 13, flags
  for flag in flags:
    assert re.search(rf"e\.g\.\s+{flag}\s", out), flag
