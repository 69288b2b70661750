"""Start a real ComfyUI (from COMFYUI_DIR) on 127.0.0.1 with this pack, for the integration tests
and the bench (it imports nothing from the pack or the tests).

ComfyUI loads the pack from a temporary custom_nodes folder (a symlink named `cloud-outpaint`,
hyphen included, as a git clone would be named) with every other custom pack disabled, and
with its own temporary input/output/user folders, so a run leaves nothing behind (the pack's result
cache, spend ledger and spend settings included: they go to <user folder>/cloud_outpaint/).
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

ROOT = pathlib.Path(__file__).resolve().parent.parent  # the pack
PACK_FOLDER = "cloud-outpaint"
SETTINGS = {
    "Comfy.TutorialCompleted": True,  # no first-run templates dialog in the browser tests
    # frontend 1.27 (ComfyUI 0.3.64) throws at page load unless this is "custom": registering this
    # setting runs its onChange, which for "legacy" (the default) or "standard" sets
    # Comfy.Canvas.LeftMouseClickBehavior, a setting not registered yet -> TypeError reading 'id'
    "Comfy.Canvas.NavigationMode": "custom",
}


# the pack's state folder, prices and daily limit are not inherited from the process that starts ComfyUI
# (the test suite sets its own state folder, a user's shell may hold real limits): each server keeps its
# state in its own user folder, the production place, unless `env` says otherwise
NOT_INHERITED = ("CLOUD_OUTPAINT_CACHE_DIR", "CLOUD_OUTPAINT_DAILY_LIMIT_CNY")
NOT_INHERITED_PREFIXES = ("CLOUD_OUTPAINT_PRICE_",)


def inherited_env() -> dict:
    return {k: v for k, v in os.environ.items() if k not in NOT_INHERITED and not k.startswith(NOT_INHERITED_PREFIXES)}


def comfyui_dir() -> pathlib.Path | None:
    value = os.environ.get("COMFYUI_DIR")
    return pathlib.Path(value) if value else None


def comfyui_python(comfy: pathlib.Path) -> str:
    if os.environ.get("COMFYUI_PYTHON"):
        return os.environ["COMFYUI_PYTHON"]
    for candidate in (comfy / "venv", comfy / ".venv", comfy.parent / "comfyui-venv", comfy.parent / "venv"):
        if (candidate / "bin" / "python").exists():
            return str(candidate / "bin" / "python")
    return sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ComfyServer:
    def __init__(self, workdir: pathlib.Path, env: dict | None = None):
        """ComfyUI's input folder starts empty: the pack puts the examples' image there itself."""
        self.comfy = comfyui_dir()
        self.workdir = workdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "comfyui.log"
        self.extra_env = env or {}
        self.proc = None

    def start(self, timeout: float = 300) -> "ComfyServer":
        nodes_dir = self.workdir / "custom_nodes"
        nodes_dir.mkdir(parents=True, exist_ok=True)
        (nodes_dir / PACK_FOLDER).symlink_to(ROOT, target_is_directory=True)
        for sub in ("input", "output", "temp", "user/default"):
            (self.workdir / sub).mkdir(parents=True, exist_ok=True)
        (self.workdir / "user/default/comfy.settings.json").write_text(json.dumps(SETTINGS))
        yaml = self.workdir / "extra_paths.yaml"
        yaml.write_text(f"cloud_outpaint_test:\n  custom_nodes: {nodes_dir}\n")
        cmd = [comfyui_python(self.comfy), "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(self.port),
               "--disable-api-nodes", "--disable-all-custom-nodes", "--whitelist-custom-nodes", PACK_FOLDER,
               "--extra-model-paths-config", str(yaml),
               "--input-directory", str(self.workdir / "input"), "--output-directory", str(self.workdir / "output"),
               "--temp-directory", str(self.workdir / "temp"), "--user-directory", str(self.workdir / "user")]
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, cwd=self.comfy, stdout=self.log, stderr=subprocess.STDOUT,
                                     env={**inherited_env(), **self.extra_env})
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ComfyUI exited with {self.proc.returncode}:\n{self.log_text()[-3000:]}")
            try:
                self.get("/system_stats", timeout=2)
                return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.5)
        self.stop()
        raise TimeoutError(f"ComfyUI did not answer within {timeout}s:\n{self.log_text()[-3000:]}")

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        if getattr(self, "log", None):
            self.log.close()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def get(self, path: str, timeout: float = 30):
        with urllib.request.urlopen(self.url + path, timeout=timeout) as r:
            body = r.read()
            return json.loads(body) if r.headers.get_content_type() == "application/json" else body

    def post(self, path: str, payload: dict, timeout: float = 30):
        req = urllib.request.Request(self.url + path, data=json.dumps(payload).encode(),
                                     headers={"Content-Type": "application/json", "X-Cloud-Outpaint": "1"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                status, body = r.status, r.read()
        except urllib.error.HTTPError as e:
            status, body = e.code, e.read()
        try:
            return status, json.loads(body or b"{}")
        except ValueError:
            return status, body.decode(errors="replace")

    def add_input(self, path: pathlib.Path) -> str:
        shutil.copy(path, self.workdir / "input" / path.name)
        return path.name

    def run_prompt(self, prompt: dict, timeout: float = 120) -> dict:
        status, body = self.post("/prompt", {"prompt": prompt})
        if status != 200:
            raise AssertionError(f"prompt rejected ({status}): {json.dumps(body)[:2000]}")
        pid = body["prompt_id"]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            history = self.get(f"/history/{pid}")
            if pid in history and history[pid]["status"].get("completed") is not None:
                entry = history[pid]
                if entry["status"]["status_str"] in ("success", "error"):
                    return entry
            time.sleep(0.2)
        raise TimeoutError(f"prompt {pid} did not finish in {timeout}s")

    def view(self, image: dict) -> bytes:
        from urllib.parse import urlencode
        return self.get("/view?" + urlencode({k: image[k] for k in ("filename", "subfolder", "type")}))


def widget_defaults(info: dict) -> dict:
    """The schema defaults of a node's required widgets, from its /object_info entry."""
    return {name: spec[1]["default"] for name, spec in info["input"]["required"].items()
            if len(spec) > 1 and isinstance(spec[1], dict) and "default" in spec[1]}


def side_by_side_prompt(object_info: dict, node_types: list[str], seed: int) -> dict:
    """EmptyImage -> one cloud node per entry of `node_types` (backend cloud, widget defaults) ->
    PreviewImage each: the cloud nodes depend on nothing but the image, so ComfyUI may run them at
    the same time. `seed` colours the image (and seeds the nodes), so no earlier run is cached."""
    prompt = {"1": {"class_type": "EmptyImage",
                    "inputs": {"width": 512, "height": 512, "batch_size": 1, "color": seed % 0xFFFFFF}}}
    for k, node_type in enumerate(node_types):
        node = str(10 + 2 * k)
        inputs = {**widget_defaults(object_info[node_type]), "image": ["1", 0], "backend": "cloud"}
        if "seed" in inputs:
            inputs["seed"] = seed + k
        prompt[node] = {"class_type": node_type, "inputs": inputs}
        prompt[str(11 + 2 * k)] = {"class_type": "PreviewImage", "inputs": {"images": [node, 0]}}
    return prompt


def wall_seconds(entry: dict) -> float:
    """execution_start -> execution_success of a finished prompt, from ComfyUI's own timestamps."""
    stamps = {event: data["timestamp"] for event, data in entry["status"]["messages"]}
    return (stamps["execution_success"] - stamps["execution_start"]) / 1000
