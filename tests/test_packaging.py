"""The Dockerfile, Streamlit settings and README stay true."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_dockerfile_passes_hadolint() -> None:
    hadolint = Path(sys.executable).parent / "hadolint"
    out = subprocess.run([str(hadolint), str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_dockerfile_serves_the_app_as_specified() -> None:
    text = (ROOT / "Dockerfile").read_text()
    assert "EXPOSE 8501" in text and "/_stcore/health" in text and "HEALTHCHECK" in text
    assert re.search(r"^USER (?!root|0)", text, re.M)
    assert "DLOPT_HOME=/data" in text and 'VOLUME ["/data"]' in text
    assert "download.pytorch.org/whl/cpu torch==2.13.0" in text
    for source in re.findall(r"^COPY (\S+)", text, re.M):
        assert (ROOT / source).exists(), f"COPY source {source} is missing"


def test_dockerfile_install_step_resolves_without_new_packages() -> None:
    # The Dockerfile's second install step, against this environment (torch 2.13 present):
    # the pinned requirements must resolve and pull nothing but the project itself.
    step = re.search(r"^RUN (pip install .* -c constraints.txt \.)$", (ROOT / "Dockerfile").read_text(), re.M)
    assert step
    args = step.group(1).split()[2:]
    out = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--no-build-isolation", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    would = re.search(r"Would install (.*)", out.stdout)
    installed = would.group(1).split() if would else []
    assert [p for p in installed if not p.startswith("dlopt-")] == []


def test_streamlit_config_turns_off_usage_stats_and_keeps_xsrf_protection() -> None:
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["browser"]["gatherUsageStats"] is False
    assert config["server"]["enableXsrfProtection"] is True


def test_readme_starts_with_the_two_commands() -> None:
    text = (ROOT / "README.md").read_text()
    first_block = re.search(r"```bash\n(.*?)```", text, re.S).group(1)
    assert first_block.splitlines()[0].startswith("./dev.sh app")
    assert first_block.splitlines()[1].startswith("./dev.sh test")
    assert (ROOT / "dev.sh").stat().st_mode & 0o111


def test_the_app_config_sends_no_element_as_a_reference_to_a_cached_copy() -> None:
    """A reference that outlives its fragment run's dropped elements blanks a busy tab for good
    (issue 26): under the app's config even a large element (a chart) is not cacheable."""
    code = (
        "from streamlit import config\n"
        "from streamlit.proto.ForwardMsg_pb2 import ForwardMsg\n"
        "from streamlit.runtime.forward_msg_cache import populate_hash_if_needed\n"
        "config.get_config_options(force_reparse=True)\n"
        "msg = ForwardMsg()\n"
        "msg.delta.new_element.markdown.body = 'x' * 5_000_000\n"
        "populate_hash_if_needed(msg)\n"
        "print(msg.metadata.cacheable)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-1] == "False"


def test_streamlit_stops_an_upload_at_the_apps_own_size_limit() -> None:
    """Streamlit accepted 200 MB while the app refused more than 20 MB: four 150 MB uploads held
    ~420 MB of server memory for good. Its limit (MiB) is now the app's."""
    from dlopt_core.uploads.parse import MAX_UPLOAD_BYTES

    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] * 2**20 == MAX_UPLOAD_BYTES
