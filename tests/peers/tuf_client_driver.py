"""python-tuf's ngclient against a TUF repository, as Sigstore clients use it; run by its venv's
Python. Prints one JSON object: the trusted root version and, per target, its bytes' SHA-256
and whether it came from the cache.

    python tuf_client_driver.py METADATA_URL ROOT_JSON CACHE_DIR TARGET...

Exit 1 with `<ErrorName>: <message>` on stderr when refreshing or a download fails.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

from tuf.api.exceptions import DownloadError, RepositoryError
from tuf.ngclient import Updater


def main(argv: list[str]) -> int:
    url, root, cache, *targets = argv
    metadata, target_dir = Path(cache) / "metadata", Path(cache) / "targets"
    metadata.mkdir(parents=True, exist_ok=True)
    target_dir.mkdir(exist_ok=True)
    # sigstore-python's TrustUpdater: targets under METADATA_URL/targets/, root bootstrapped.
    updater = Updater(
        metadata_dir=str(metadata),
        metadata_base_url=url,
        target_base_url=f"{url}/targets/",
        target_dir=str(target_dir),
        bootstrap=Path(root).read_bytes(),
    )
    try:
        updater.refresh()
        found = {}
        for name in targets:
            info = updater.get_targetinfo(name)
            if info is None:
                raise RepositoryError(f"no target named {name}")
            cached = updater.find_cached_target(info)
            path = cached or updater.download_target(info)
            digest = hashlib.sha256(Path(path).read_bytes()).hexdigest()
            found[name] = {"sha256": digest, "cached": cached is not None}
    except (RepositoryError, DownloadError) as error:
        print(f"{type(error).__name__}: {error}", file=sys.stderr)
        return 1
    version = json.loads((metadata / "root.json").read_bytes())["signed"]["version"]
    print(json.dumps({"root_version": version, "targets": found}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
