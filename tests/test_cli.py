"""The command line (cli.py -> nodes/cli): real subprocesses where the process boundary matters
(loading the pack by path, exit codes, environment, Ctrl-C), in-process for the cheap usage checks."""

import json
import os
import pathlib
import signal
import subprocess
import sys
import time

import pytest
from conftest import ROOT, sandbox_env
from pack import module
from PIL import Image

cli = module("nodes.cli")
inputs = module("nodes.cli.inputs")
Sandbox = module("nodes.sandbox").Sandbox
CLI = ROOT / "cli.py"


def child_env(home: pathlib.Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("VOLC_", "DASHSCOPE_")) and k != "CLOUD_OUTPAINT_STORE"}
    env.update(HOME=str(home), PYTHONDONTWRITEBYTECODE="1", **extra)
    return env


def run_cli(*args, home, cwd=None, timeout=60, **extra) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(CLI), *map(str, args)], check=False, cwd=cwd or home,
                          env=child_env(home, **extra), capture_output=True, text=True, timeout=timeout)


def images(folder: pathlib.Path, size, names=("a.png", "b.jpg")) -> pathlib.Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        Image.new("RGB", size, (40 + 80 * i, 120, 200 - 60 * i)).save(folder / name)
    (folder / "notes.txt").write_text("not an image")
    return folder


class Launch:
    """A CLI child started at once (the subprocess tests run side by side: torch's import dominates)."""

    def __init__(self, *args, home, **extra):
        self.proc = subprocess.Popen([sys.executable, str(CLI), *map(str, args)], cwd=home,
                                     env=child_env(home, **extra), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        self._done = None

    def result(self, timeout=60) -> subprocess.CompletedProcess:
        if self._done is None:
            try:
                out, err = self.proc.communicate(timeout=timeout)
            finally:
                self.proc.kill()
            self._done = subprocess.CompletedProcess(self.proc.args, self.proc.returncode, out, err)
        return self._done


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Every slow subprocess scenario, launched together; each test below checks one of them."""
    base = tmp_path_factory.mktemp("cli")
    home = base / "home"
    home.mkdir()
    small = images(base / "small", (64, 48))
    big = images(base / "big", (512, 512), names=("a.png",))
    with Sandbox() as check_sb, Sandbox() as fault_sb, Sandbox() as stuck_sb:
        fault_sb.inject("volc", "error", code=50411)  # input moderation: the first request (a.png) fails
        stuck_sb.inject("dashscope", "stuck", state="PENDING")
        launched = {
            "ctrl_c": Launch("outpaint", big, "--vendor", "dashscope", "--out", base / "out_ctrl_c", home=home,
                             **sandbox_env(stuck_sb)),
            "demo": Launch("demo", "--out", base / "demo", home=home),
            "volc": Launch("outpaint", small, "--vendor", "volc", "--sandbox", "--top", "0.25", "--bottom", "0.25",
                           "--left", "0.25", "--right", "0.25", "--out", base / "out_volc", home=home),
            "fault": Launch("outpaint", small, "--vendor", "volc", "--concurrency", "1", "--out", base / "out_fault",
                            home=home, **sandbox_env(fault_sb)),
            "check": Launch("check", "--test", home=home, **sandbox_env(check_sb)),
            "no_credentials": Launch("outpaint", small, "--vendor", "dashscope", "--out", base / "out_none",
                                     home=home),
        }
        try:
            yield {"base": base, "check_sb": check_sb, "fault_sb": fault_sb, "stuck_sb": stuck_sb, **launched}
        finally:
            for launch in launched.values():
                launch.proc.kill()
                launch.result()


def test_help_of_every_command_exits_0_and_explains_the_contract(tmp_path):
    top = run_cli("--help", home=tmp_path)
    assert top.returncode == 0, top.stderr
    for text in ("outpaint", "demo", "check", "sandbox", "exit codes", "billed", "install torch"):
        assert text in top.stdout
    for command in ("outpaint", "demo", "check", "sandbox"):
        result = run_cli(command, "--help", home=tmp_path)
        assert result.returncode == 0, result.stderr
    outpaint = run_cli("outpaint", "--help", home=tmp_path).stdout
    for text in ("--pad-pixels", "--mask", "--resume-task-id", "--offsets", "512-4096", "billed", "--sandbox",
                 "  3  no credentials"):
        assert text in outpaint


def test_help_usage_errors_and_missing_dashscope_credentials_never_import_torch(tmp_path):
    # torch takes a second to import: only the commands that process images may pay for it
    probe = (f"import runpy, sys; code = runpy.run_path({str(CLI)!r})['main'](); "
             "print('torch loaded' if 'torch' in sys.modules else 'no torch'); sys.exit(code)")
    image = images(tmp_path / "in", (64, 48), names=("a.png",)) / "a.png"
    for argv, code in ((["--help"], 0), (["outpaint", image, "--vendor", "dashscope", "--top", "0.2"], 2),
                       (["outpaint", image, "--vendor", "dashscope"], 3)):
        result = subprocess.run([sys.executable, "-c", probe, *map(str, argv)], cwd=tmp_path, env=child_env(tmp_path),
                                capture_output=True, text=True, timeout=60, check=False)
        assert (result.returncode, result.stdout.splitlines()[-1]) == (code, "no torch"), result.stderr


def test_ctrl_c_cancels_the_pending_task_and_exits_4(runs):
    sb, launch = runs["stuck_sb"], runs["ctrl_c"]
    deadline = time.monotonic() + 30
    while sb.request_count("dashscope", "create") == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sb.request_count("dashscope", "create") == 1, launch.proc.poll()
    launch.proc.send_signal(signal.SIGINT)
    result = launch.result(timeout=20)
    assert result.returncode == 4, result.stderr
    assert "interrupted" in result.stderr
    assert sb.request_count("dashscope", "cancel") == 1
    assert not list((runs["base"] / "out_ctrl_c").glob("*.png"))


def test_demo_writes_results_and_a_contact_sheet(runs):
    result = runs["demo"].result()
    assert result.returncode == 0, result.stderr
    out = runs["base"] / "demo"
    assert str(out) in result.stdout
    sizes = {p.name: Image.open(p).size for p in out.glob("*.png")}
    assert sizes["01_canvas.png"] == sizes["01_mask.png"] == sizes["03_volc_canvas.png"] == (512, 320)
    assert sizes["02_volc_ratio.png"] == (576, 384)  # 384x256 + 25 % a side
    assert sizes["04_dashscope_scale.png"] == (576, 384)  # x1.5 each way
    sheet = Image.open(out / "contact_sheet.png")
    sheet.verify()
    assert sheet.format == "PNG" and sheet.width > 6 * 200 and sheet.height >= 200
    summary = json.loads((out / "summary.json").read_text())
    assert [s["step"] for s in summary["steps"]] == ["MaskCanvasBuilder", "VolcOutpaint ratio",
                                                     "VolcOutpaint canvas", "DashScopeOutpaint scale"]
    assert summary["contact_sheet"]["width"] == sheet.width


def test_outpaint_sandbox_volc_ratio_on_a_folder(runs):
    result = runs["volc"].result()
    assert result.returncode == 0, result.stderr
    out = runs["base"] / "out_volc"
    assert sorted(p.name for p in out.iterdir()) == ["a_outpaint.json", "a_outpaint.png", "b_outpaint.json",
                                                     "b_outpaint.png"]
    for stem in ("a", "b"):
        assert Image.open(out / f"{stem}_outpaint.png").size == (96, 72)
        side = json.loads((out / f"{stem}_outpaint.json").read_text())
        assert side["status"] == "ok" and side["vendor"] == "volc" and side["backend"] == "sandbox"
        assert side["input_size"] == [64, 48] and side["outputs"][0]["width"] == 96
        assert side["parameters"]["top"] == 0.25 and len(side["request_ids"]) == 1
        assert side["info"]["results"][0]["output"] == "96x72" and side["seconds"] >= 0
    assert str(out / "a_outpaint.png") in result.stdout


def test_a_failing_file_gives_exit_1_and_the_other_is_written(runs):
    result = runs["fault"].result()
    assert result.returncode == 1, result.stderr
    assert "FAILED" in result.stderr and "a.png" in result.stderr and "50411" in result.stderr
    out = runs["base"] / "out_fault"
    assert not (out / "a_outpaint.png").exists()
    assert Image.open(out / "b_outpaint.png").size == (76, 58)  # default 0.1 a side, rounded per side
    failed = json.loads((out / "a_outpaint.json").read_text())
    assert failed["status"] == "failed" and failed["error"]["code"] == "50411"
    assert json.loads((out / "b_outpaint.json").read_text())["status"] == "ok"
    assert runs["fault_sb"].request_count("volc") == 2


def test_check_shows_sources_and_hints_never_secrets_and_tests_them(runs):
    result, sb = runs["check"].result(), runs["check_sb"]
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "Volcengine: configured from env" in out and "DashScope: configured from env" in out
    assert f"…{sb.volc_access_key[-4:]}" in out and f"…{sb.dashscope_api_key[-4:]}" in out
    for secret in (sb.volc_secret_key, sb.dashscope_api_key, sb.volc_access_key):
        assert secret not in out + result.stderr
    assert out.count(": OK:") == 2 and sb.request_count() == 2


def test_no_credentials_exits_3_with_the_sandbox_hint(runs):
    result = runs["no_credentials"].result()
    assert result.returncode == 3, result.stderr
    assert "no credentials" in result.stderr and "--sandbox" in result.stderr and "DASHSCOPE_API_KEY" in result.stderr
    assert not (runs["base"] / "out_none").exists()


def test_outpaint_sandbox_dashscope_offsets_in_process(tmp_path, capsys):
    folder = images(tmp_path / "in", (512, 512))
    code = cli.main(["outpaint", str(folder), "--vendor", "dashscope", "--sandbox", "--mode", "offsets",
                     "--offsets", "64,32,64,0", "--out", str(tmp_path / "out")])
    assert code == 0, capsys.readouterr().err
    for stem in ("a", "b"):
        assert Image.open(tmp_path / "out" / f"{stem}_outpaint.png").size == (640, 544)
        side = json.loads((tmp_path / "out" / f"{stem}_outpaint.json").read_text())
        assert side["mode"] == "offsets" and side["task_ids"] and side["info"]["results"][0]["output"] == "640x544"


def test_resume_task_ids_fetch_each_files_own_task_without_creating_new_ones(tmp_path, capsys, monkeypatch):
    folder = images(tmp_path / "in", (512, 512))
    with Sandbox() as sb:
        for key, value in sandbox_env(sb).items():
            monkeypatch.setenv(key, value)
        assert cli.main(["outpaint", str(folder), "--vendor", "dashscope", "--out", str(tmp_path / "first")]) == 0
        tasks = {stem: json.loads((tmp_path / "first" / f"{stem}_outpaint.json").read_text())["task_ids"]
                 for stem in ("a", "b")}
        assert sb.request_count("dashscope", "create") == 2
        code = cli.main(["outpaint", str(folder), "--vendor", "dashscope", "--out", str(tmp_path / "again"),
                         "--resume-task-id", tasks["a"][0], "--resume-task-id", tasks["b"][0]])
        assert code == 0, capsys.readouterr().err
        assert sb.request_count("dashscope", "create") == 2  # nothing new was created (or billed)
    for stem in ("a", "b"):
        side = json.loads((tmp_path / "again" / f"{stem}_outpaint.json").read_text())
        assert side["options"]["resume_task_ids"] == tasks[stem] == side["task_ids"]


def test_volc_canvas_mode_with_pad_pixels_and_variants_in_process(tmp_path, capsys):
    folder = images(tmp_path / "in", (40, 30), names=("a.png",))
    code = cli.main(["outpaint", str(folder / "a.png"), "--vendor", "volc", "--sandbox", "--pad-pixels", "8,4,8,4",
                     "--variants", "2", "--seed", "7", "--out", str(tmp_path / "out"), "--quiet"])
    assert code == 0, capsys.readouterr().err
    for v in (1, 2):
        assert Image.open(tmp_path / "out" / f"a_outpaint_v{v}.png").size == (56, 38)
    side = json.loads((tmp_path / "out" / "a_outpaint.json").read_text())
    assert side["mode"] == "canvas" and side["canvas"]["placement"]["canvas_width"] == 56
    assert [r["seed"] for r in side["info"]["results"]] == [7, 8]


@pytest.mark.parametrize("argv, says", [
    (["--vendor", "volc", "--mode", "scale"], "--mode: DashScope option"),
    (["--vendor", "dashscope", "--top", "0.2"], "--top: Volcengine option"),
    (["--vendor", "volc", "--top", "0", "--bottom", "0", "--left", "0", "--right", "0"], "nothing to outpaint"),
    (["--vendor", "volc", "--steps", "500"], "steps is 500"),
    (["--vendor", "volc", "--mask", "m.png", "--pad-pixels", "1,1,1,1"], "use one"),
    (["--vendor", "dashscope", "--x-scale", "5"], "x_scale is 5.0"),
    (["--vendor", "dashscope", "--offsets", "8,8,8,8"], "only apply with --mode offsets"),
    (["--vendor", "dashscope", "--resume-task-id", "t1"], "give one per file"),
    (["--vendor", "volc", "--concurrency", "40"], "use 1 to 8"),
])
def test_bad_usage_exits_2_before_anything_is_sent(tmp_path, capsys, monkeypatch, argv, says):
    folder = images(tmp_path / "in", (64, 48))
    with Sandbox() as sb:
        for key, value in sandbox_env(sb).items():
            monkeypatch.setenv(key, value)
        code = cli.main(["outpaint", str(folder), "--out", str(tmp_path / "out"), *argv])
        assert sb.request_count() == 0
    err = capsys.readouterr().err
    assert code == 2 and says in err, err
    assert not (tmp_path / "out").exists()


def test_bad_inputs_exit_2(tmp_path, capsys):
    (tmp_path / "broken.png").write_bytes(b"not a png")
    assert cli.main(["outpaint", str(tmp_path / "missing.png"), "--vendor", "volc", "--sandbox"]) == 2
    assert "no such file" in capsys.readouterr().err
    assert cli.main(["outpaint", str(tmp_path / "broken.png"), "--vendor", "volc", "--sandbox"]) == 2
    assert "not a readable image" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert cli.main(["outpaint", str(tmp_path / "empty"), "--vendor", "volc", "--sandbox"]) == 2
    assert "--recursive" in capsys.readouterr().err
    assert cli.main(["outpaint", str(tmp_path), "--vendor", "nope"]) == 2  # argparse


def test_check_exit_codes_in_process(tmp_path, capsys, monkeypatch):
    for key in [k for k in os.environ if k.startswith(("VOLC_", "DASHSCOPE_"))]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("CLOUD_OUTPAINT_STORE", raising=False)
    assert cli.main(["check"]) == 3
    assert cli.main(["check", "--test"]) == 3
    assert cli.main(["check", "--sandbox"]) == 0
    monkeypatch.setenv("DASHSCOPE_API_KEY", "sk-wrong-key-00000000000000000000")
    with Sandbox() as sb:
        monkeypatch.setenv("DASHSCOPE_HTTP_BASE_URL", f"{sb.url}/api/v1")
        assert cli.main(["check", "--test"]) == 1
    out = capsys.readouterr().out
    assert "FAILED" in out and "sk-wrong-key-00000000000000000000" not in out


def test_vendor_error_on_every_file_exits_5_in_process(tmp_path, capsys, monkeypatch):
    folder = images(tmp_path / "in", (64, 48))
    with Sandbox() as sb:
        for key, value in sandbox_env(sb).items():
            monkeypatch.setenv(key, value)
        sb.inject("volc", "error", code=50411, times=2)
        code = cli.main(["outpaint", str(folder), "--vendor", "volc", "--out", str(tmp_path / "out")])
    assert code == 5, capsys.readouterr().err
    assert not list((tmp_path / "out").glob("*.png"))


def test_volc_canvas_mode_with_a_mask_file_in_process(tmp_path, capsys):
    folder = images(tmp_path / "in", (56, 38), names=("canvas.png",))
    mask = Image.new("L", (56, 38), 255)
    mask.paste(0, (8, 4, 48, 34))
    mask.save(tmp_path / "mask.png")
    code = cli.main(["outpaint", str(folder), "--vendor", "volc", "--sandbox", "--mask", str(tmp_path / "mask.png"),
                     "--out", str(tmp_path / "out"), "--quiet"])
    assert code == 0, capsys.readouterr().err
    assert Image.open(tmp_path / "out" / "canvas_outpaint.png").size == (56, 38)
    # a mask of another size than the inputs is refused before sending
    Image.new("L", (10, 10), 255).save(tmp_path / "small_mask.png")
    assert cli.main(["outpaint", str(folder), "--vendor", "volc", "--sandbox", "--mask",
                     str(tmp_path / "small_mask.png")]) == 2
    assert "--mask is 10x10" in capsys.readouterr().err


def test_inputs_get_unique_output_names_and_earlier_results_are_skipped(tmp_path):
    folder = images(tmp_path / "in", (8, 8), names=("a.png", "a.jpg", "a_2.png"))
    (folder / "sub").mkdir()
    Image.new("RGB", (8, 8)).save(folder / "sub" / "c.webp")
    Image.new("RGB", (8, 8)).save(folder / "a_outpaint.png")  # a result of an earlier run with --out in/
    keys = [s.key for s in inputs.collect_inputs([str(folder)], False, folder)]
    assert keys == ["a", "a_2", "a_2_2"]
    keys = [s.key for s in inputs.collect_inputs([str(folder), str(folder / "a.png")], True, tmp_path / "out")]
    assert keys == ["a", "a_2", "a_2_2", "a_outpaint", "sub/c"]  # a.jpg, a.png, a_2.png, ...; a.png once


def test_sandbox_command_serves_with_its_settings_and_refuses_unknown_ones(tmp_path):
    bad = run_cli("sandbox", "--set", "no_such_setting=1", home=tmp_path)
    assert bad.returncode == 2 and "unknown sandbox setting 'no_such_setting'" in bad.stderr
    proc = subprocess.Popen([sys.executable, str(CLI), "sandbox", "--latency", "0", "--set", "dashscope_running_s=0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=child_env(tmp_path))
    try:
        url = None
        for _ in range(40):
            line = proc.stdout.readline()
            if line.startswith("sandbox: http://127.0.0.1:"):
                url = line.split()[1]
                break
        assert url, "the sandbox printed no URL"
        import urllib.error
        import urllib.request
        with pytest.raises(urllib.error.HTTPError) as refused:  # a live emulator: unsigned calls are refused
            urllib.request.urlopen(f"{url}/?Action=CVProcess&Version=2022-08-31", data=b"{}", timeout=5)
        assert refused.value.code in (400, 401, 403)
    finally:
        # SIGTERM, not SIGINT: a test run started in the background inherits an ignored SIGINT
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0


def test_a_failed_files_sidecar_names_the_paid_work_its_batch_did_not_return(tmp_path):
    """A Volcengine file with --variants: one variant failed after another was billed (runner.BatchError);
    the sidecar keeps that request id, so nothing is paid twice unawares."""
    import types

    outpaint, runner = module("nodes.cli.outpaint"), module("nodes.core.runner")
    errors = module("nodes.core.errors")
    cause = errors.VendorError("Volcengine", 50411, "refused", request_id="RID-2", billed=False)
    spent = [runner.Spend("image 1 variant 1", "request id", "RID-1", "billed; not returned because the run failed")]
    error = runner.BatchError("image 1 variant 2", cause, spent, {})
    plan = types.SimpleNamespace(vendor="volc", backend="sandbox", mode="ratio", params={}, options_for=lambda i: {},
                                 credentials=types.SimpleNamespace(base_url="http://127.0.0.1:1"))
    source = types.SimpleNamespace(path=tmp_path / "a.png", width=8, height=8)
    record = outpaint._error_record(source, 0, plan, error)
    assert record["status"] == "failed" and record["error"]["request_id"] == "RID-2"
    assert [s["id"] for s in record["error"]["spent"]] == ["RID-1"]
    json.dumps(record)  # the sidecar is JSON
