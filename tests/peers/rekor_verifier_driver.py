"""Runs rekor-verifier (PyPI) against a Rekor v1 log at a given URL; run by its venv's Python.

rekor-verifier hard-codes the public log's URLs as module constants; this points them at the
log under test and calls its two checks, exiting 0 when the check returned True.

    python rekor_verifier_driver.py URL inclusion LOG_INDEX ARTIFACT
    python rekor_verifier_driver.py URL consistency TREE_ID TREE_SIZE ROOT_HASH
"""

from __future__ import annotations

import sys

from rekor_verifier import main as verifier
from rekor_verifier import util


def main(argv: list[str]) -> int:
    url, check, *args = argv
    entries = f"{url}/api/v1/log/entries?logIndex={{0}}"
    verifier.GET_LOG_ENTRY = util.GET_LOG_ENTRY = entries
    verifier.GET_LOG = f"{url}/api/v1/log"
    verifier.GET_PROOF = f"{url}/api/v1/log/proof?firstSize={{0}}&lastSize={{1}}&treeId={{2}}"
    if check == "inclusion":
        index, artifact = args
        return 0 if verifier.inclusion(int(index), artifact) else 1
    tree_id, size, root_hash = args
    previous = {"treeID": tree_id, "treeSize": int(size), "rootHash": root_hash}
    return 0 if verifier.consistency(previous) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
