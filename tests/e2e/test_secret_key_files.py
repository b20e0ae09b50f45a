"""Key files from Kubernetes Secrets (issue 24 item 9). A Secret volume's files are written by
the kubelet as root: mode 0644 by default, and with the pod's `fsGroup` group-owned by it and
group-readable (`defaultMode: 0400` becomes 0440). A non-root pod can only read a Secret
through that group, so the owner-only check accepts exactly that shape (root's file, readable
by a group this process runs with and by nothing else) and refuses every other with a line
that says how to fix the file or the mount.

The pure check runs over the stat fields; the real one reads files made as the kubelet makes
them, in a child process running as a pod's user would (uid 10001, its fsGroup 2000): root
is needed to make such files and to drop to that user."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from keyless.server.state import StateDirError, check_key_file_mode, read_private_key

POD_USER, POD_GROUP, FS_GROUP = 10001, 10001, 2000
PATH = Path("/etc/keyless-keys/rekor-key.pem")
SECRET_HINT = (
    "mount its Secret with defaultMode: 0400 and the pod's own fsGroup, through which this "
    "process reads it and nothing else can (README: 'Keys from Kubernetes Secrets'); outside "
    "Kubernetes, make it this user's file, mode 600; replace the key if others may have read it"
)
OWN_HINT = (
    f"chmod 600 {PATH} (a Kubernetes Secret: mount it with defaultMode: 0400), and replace the "
    "key if others may have read it"
)
GROUP_WRITE_HINT = (
    f"{OWN_HINT}; with a pod fsGroup the kubelet makes a volume's files group-writable at each "
    "mount unless fsGroupChangePolicy is OnRootMismatch"
)


def _check(mode: int, owner: int, group: int, uid: int = POD_USER) -> StateDirError | None:
    try:
        check_key_file_mode(
            PATH, mode=mode, owner=owner, group=group, uid=uid, groups={POD_GROUP, FS_GROUP}
        )
    except StateDirError as exc:
        return exc
    return None


@pytest.mark.parametrize(
    ("mode", "owner", "group", "uid"),
    [
        (0o100600, POD_USER, POD_GROUP, POD_USER),
        (0o100400, POD_USER, POD_GROUP, POD_USER),
        (0o100440, 0, FS_GROUP, POD_USER),  # defaultMode: 0400 with the pod's fsGroup
        (0o100440, 0, POD_GROUP, POD_USER),
        (0o100400, 0, 0, 0),  # a root pod, defaultMode: 0400 and no fsGroup
    ],
    ids=["own-0600", "own-0400", "secret-fsgroup", "secret-own-group", "root-pod-0400"],
)
def test_accepted(mode, owner, group, uid) -> None:
    assert _check(mode, owner, group, uid) is None


@pytest.mark.parametrize(
    ("mode", "owner", "group", "uid", "hint"),
    [
        # The Secret's default mode, with or without fsGroup: anyone in the container reads it.
        (0o100644, 0, FS_GROUP, POD_USER, SECRET_HINT),
        # Group-readable through a group this process does not run with.
        (0o100440, 0, 3000, POD_USER, SECRET_HINT),
        # Group-writable: not what a Secret mount gives.
        (0o100460, 0, FS_GROUP, POD_USER, SECRET_HINT),
        # Someone else's file readable by our group: only a root-written Secret is taken.
        (0o100440, 4000, FS_GROUP, POD_USER, SECRET_HINT),
        # A file this process owns: it can make it owner only.
        (0o100640, POD_USER, FS_GROUP, POD_USER, OWN_HINT),
        # The state volume's files after a kubelet fsGroup walk (rw for the group).
        (0o100660, POD_USER, FS_GROUP, POD_USER, GROUP_WRITE_HINT),
        # A root pod's Secret with fsGroup: root owns it, and could have it 0400.
        (0o100440, 0, FS_GROUP, 0, OWN_HINT),
    ],
    ids=[
        "secret-default-0644",
        "secret-other-group",
        "secret-group-writable",
        "other-owner",
        "own-group-readable",
        "volume-after-fsgroup-walk",
        "root-pod-fsgroup",
    ],
)
def test_refused(mode, owner, group, uid, hint) -> None:
    refused = _check(mode, owner, group, uid)
    assert refused is not None
    assert refused.message == (
        f"key file {PATH} is readable or writable by others (mode {mode & 0o777:o})"
    )
    assert refused.hint == hint


@pytest.fixture
def mounted() -> Iterator[Path]:
    """A directory others may enter (pytest's are root's alone), like a Secret volume."""
    if os.geteuid() != 0:
        pytest.skip("making root's files and dropping to a pod's user needs root")
    folder = Path(tempfile.mkdtemp(prefix="keyless-secret-", dir="/tmp"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder)


def _projected(folder: Path, *, mode: int, group: int, owner: int = 0) -> Path:
    """A key file as the kubelet writes a Secret's: `owner`'s, group `group`, `mode`."""
    key = ec.generate_private_key(ec.SECP256R1())
    path = folder / "rekor-key.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    os.chown(path, owner, group)
    path.chmod(mode)
    return path


def _read_as_pod(path: Path, *, groups: tuple[int, ...]) -> str:
    """read_private_key(path) in a child running as the pod's user with `groups`: "ok", or the
    refusal's message and hint."""
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover (the child reports through the pipe)
        try:
            os.setgroups(list(groups))
            os.setgid(POD_GROUP)
            os.setuid(POD_USER)
            try:
                read_private_key(path)
                result = "ok"
            except StateDirError as exc:
                result = f"{exc.message}\n{exc.hint}"
        except BaseException as exc:
            result = f"child failed: {exc!r}"
        os.write(writer, result.encode())
        os._exit(0)
    os.close(writer)
    with os.fdopen(reader, "rb") as answer:
        result = answer.read().decode()
    os.waitpid(child, 0)
    return result


def test_a_secret_mounted_with_default_mode_0400_and_the_fsgroup_is_read(mounted) -> None:
    path = _projected(mounted, mode=0o440, group=FS_GROUP)
    assert _read_as_pod(path, groups=(FS_GROUP,)) == "ok"


def test_a_secret_mounted_with_the_default_mode_is_refused(mounted) -> None:
    path = _projected(mounted, mode=0o644, group=FS_GROUP)
    assert _read_as_pod(path, groups=(FS_GROUP,)) == (
        f"key file {path} is readable or writable by others (mode 644)\n{SECRET_HINT}"
    )


def test_a_secret_without_the_fsgroup_cannot_be_read_and_says_why(mounted) -> None:
    path = _projected(mounted, mode=0o400, group=0)
    assert _read_as_pod(path, groups=()) == (
        f"key file {path} cannot be read: Permission denied\n"
        "a Kubernetes Secret is owned by root: mount it with defaultMode: 0400 and give the pod "
        "an fsGroup, through which this process reads it (README: 'Keys from Kubernetes "
        "Secrets')"
    )


def test_a_state_file_the_kubelet_made_group_writable_is_refused(mounted) -> None:
    path = _projected(mounted, mode=0o660, group=FS_GROUP, owner=POD_USER)
    expected_hint = GROUP_WRITE_HINT.replace(str(PATH), str(path))
    assert _read_as_pod(path, groups=(FS_GROUP,)) == (
        f"key file {path} is readable or writable by others (mode 660)\n{expected_hint}"
    )
