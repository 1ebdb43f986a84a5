"""``core/file_place.py``: a file's place judged from what a walk saw, uids given (so the
rules for another user's link, folder or file are tried without root)."""

from __future__ import annotations

import stat

from LLM_Mesh.core.file_place import Entry, Passed, Walked, place_refusal

ME, THEM = 1000, 1001
DIR, LINK, FILE = stat.S_IFDIR, stat.S_IFLNK, stat.S_IFREG
WHAT = "the database /x/db"


def _dir(path: str, mode: int = 0o755, uid: int = 0) -> Entry:
    return Entry(path, uid, DIR | mode)


def _walked(
    *, tmp: Entry, mine: Entry, file: Entry | None, links: tuple[Entry, ...] = ()
) -> Walked:
    """``/`` → ``/tmp`` (``tmp``) → ``/tmp/m`` (``mine``) → the file."""
    root = _dir("/")
    return Walked([Passed(root, tmp), Passed(tmp, mine), Passed(mine, file)], list(links), file)


def test_a_folder_of_ones_own_in_a_sticky_tmp_is_trusted() -> None:
    file = Entry("/tmp/m/db", ME, FILE | 0o600)
    walked = _walked(tmp=_dir("/tmp", 0o1777), mine=_dir("/tmp/m", 0o700, ME), file=file)
    assert place_refusal(walked, ME, WHAT) is None
    assert place_refusal(_walked(tmp=_dir("/tmp", 0o1777), mine=_dir("/tmp/m", 0o700, ME), file=None), ME, WHAT) is None  # fmt: skip


def test_another_users_folder_in_a_sticky_tmp_is_refused() -> None:
    """They made ``/tmp/m`` (sticky lets anyone add a name) and can replace what is in it."""
    walked = _walked(tmp=_dir("/tmp", 0o1777), mine=_dir("/tmp/m", 0o700, THEM), file=None)
    refusal = place_refusal(walked, ME, WHAT)
    assert refusal is not None and "the folder /tmp/m" in refusal
    assert f"belongs to another user (uid {THEM}, you are {ME})" in refusal


def test_a_folder_the_group_can_write_on_the_way_is_refused_unless_sticky() -> None:
    for mode, refused in ((0o775, True), (0o757, True), (0o1775, False), (0o755, False)):
        walked = _walked(tmp=_dir("/tmp", mode), mine=_dir("/tmp/m", 0o700, ME), file=None)
        refusal = place_refusal(walked, ME, WHAT)
        assert (refusal is not None) is refused, (oct(mode), refusal)
        if refused:
            assert f"(mode {mode:04o}), on the way to {WHAT}" in (refusal or "")


def test_the_files_own_folder_is_refused_when_others_can_write_it_even_sticky() -> None:
    for mode in (0o770, 0o1777, 0o1730):
        walked = _walked(tmp=_dir("/tmp", 0o1777), mine=_dir("/tmp/m", mode, ME), file=None)
        refusal = place_refusal(walked, ME, WHAT)
        assert refusal is not None and "journal files go" in refusal, oct(mode)
        assert "chmod go-w /tmp/m" in refusal


def test_links_and_the_file_another_user_owns_are_refused_roots_are_not() -> None:
    ok = dict(tmp=_dir("/tmp", 0o1777), mine=_dir("/tmp/m", 0o700, ME))
    theirs = Entry("/tmp/m/db", THEM, FILE | 0o666)
    refusal = place_refusal(_walked(**ok, file=theirs), ME, WHAT)
    assert refusal is not None and f"belongs to another user (uid {THEM}" in refusal
    link = Entry("/tmp/db", THEM, LINK | 0o777)
    mine = Entry("/tmp/m/db", ME, FILE | 0o600)
    refusal = place_refusal(_walked(**ok, file=mine, links=(link,)), ME, WHAT)
    assert refusal is not None and "the symbolic link /tmp/db belongs to another user" in refusal
    for owner in (ME, 0):  # the user's own placement; a system link (/var/run -> /run)
        link = Entry("/tmp/db", owner, LINK | 0o777)
        assert place_refusal(_walked(**ok, file=mine, links=(link,)), ME, WHAT) is None
    folder = Entry("/tmp/m/db", ME, DIR | 0o700)
    assert "not a regular file" in (place_refusal(_walked(**ok, file=folder), ME, WHAT) or "")


def test_root_trusts_only_roots() -> None:
    walked = _walked(tmp=_dir("/tmp", 0o1777), mine=_dir("/tmp/m", 0o700, ME), file=None)
    refusal = place_refusal(walked, 0, WHAT)
    assert refusal is not None and "(uid 1000, you are 0)" in refusal


def test_a_shared_folder_is_never_advised_to_be_made_unwritable_to_others() -> None:
    """Found 2026-12-07 (review42): a database put straight in ``/tmp`` was refused with
    "... or chmod go-w /tmp": advice that breaks every other user's and service's use of
    ``/tmp``, and that a user other than root cannot follow (the same for a shared folder of
    root's, or of another group, on the way). ``chmod go-w`` is advised only for a folder
    that is the user's own, never for a sticky one of root's; else a folder of their own is."""
    tmp = _dir("/tmp", 0o1777)
    last = Walked([Passed(_dir("/"), tmp), Passed(tmp, None)], [], None)
    refusal = place_refusal(last, ME, WHAT)
    assert refusal is not None and "the folder /tmp (mode 1777)" in refusal, refusal
    assert "chmod" not in refusal and "mkdir -m 700" in refusal, refusal
    as_root = place_refusal(last, 0, WHAT)  # /tmp is root's, still the system's to share
    assert as_root is not None and "chmod" not in as_root, as_root
    shared = _dir("/srv", 0o775)  # root's, its group may write: on the way
    walked = _walked(tmp=shared, mine=_dir("/srv/m", 0o700, ME), file=None)
    refusal = place_refusal(walked, ME, WHAT)
    assert refusal is not None and "the folder /srv (mode 0775)" in refusal, refusal
    assert "chmod" not in refusal, refusal
    own = _walked(tmp=_dir("/tmp", 0o1777), mine=_dir("/tmp/m", 0o770, ME), file=None)
    assert "chmod go-w /tmp/m" in (place_refusal(own, ME, WHAT) or "")  # the user's own


# each refusal word for word, with what to do (mutation testing, mut42): the advice was
# matched by fragments only, so its text could change unnoticed


def test_each_refusal_in_full_with_what_to_do() -> None:
    ok = dict(tmp=_dir("/tmp", 0o1777), mine=_dir("/tmp/m", 0o700, ME))
    theirs = _walked(tmp=_dir("/tmp", 0o1777), mine=_dir("/tmp/m", 0o700, THEM), file=None)
    assert place_refusal(theirs, ME, WHAT) == (
        "the folder /tmp/m, on the way to the database /x/db, belongs to another user (uid "
        "1001, you are 1000), who can replace what is in it: keep the database in a folder of "
        "your own (e.g. $LLM_MESH_HOME)"
    )
    file = Entry("/tmp/m/db", THEM, FILE | 0o666)
    assert place_refusal(_walked(**ok, file=file), ME, WHAT) == (
        "the database /x/db (/tmp/m/db) belongs to another user (uid 1001, you are 1000), who "
        "can read and change it: run as that user, or move it aside and let a new one be made "
        "(mode 0600)"
    )
    link = Entry("/tmp/db", THEM, LINK | 0o777)
    mine = Entry("/tmp/m/db", ME, FILE | 0o600)
    assert place_refusal(_walked(**ok, file=mine, links=(link,)), ME, WHAT) == (
        "the database /x/db: the symbolic link /tmp/db belongs to another user (uid 1001, you "
        "are 1000), who chose where it leads: remove it, or give the path of the file itself"
    )
    spaced = _walked(tmp=_dir("/tmp", 0o1777), mine=_dir("/tmp/my db", 0o770, ME), file=None)
    assert place_refusal(spaced, ME, WHAT) == (
        "the folder /tmp/my db (mode 0770), where the database /x/db and its journal files go, "
        "can be written by other users: they can put a link or a file of their own at those "
        "names first, which SQLite would open: keep the database in a folder only you can "
        "write (e.g. $LLM_MESH_HOME), or chmod go-w '/tmp/my db'"
    )


def test_root_is_advised_chmod_for_its_own_folder_that_is_not_sticky() -> None:
    """Only a sticky folder of root's (``/tmp``) is the system's to share: root's own
    group-writable ``/srv/db`` is root's to fix; another user is told to use a folder of
    their own."""
    srv = _dir("/srv/db", 0o775, 0)
    walked = Walked([Passed(_dir("/"), srv), Passed(srv, None)], [], None)
    assert place_refusal(walked, 0, WHAT) == (
        "the folder /srv/db (mode 0775), where the database /x/db and its journal files go, "
        "can be written by other users: they can put a link or a file of their own at those "
        "names first, which SQLite would open: keep the database in a folder only you can "
        "write (e.g. $LLM_MESH_HOME), or chmod go-w /srv/db"
    )
    assert (place_refusal(walked, ME, WHAT) or "").endswith(
        ": keep the database in a folder only you can write (e.g. $LLM_MESH_HOME, or one of "
        "your own made with mkdir -m 700), not in a folder shared with others"
    )
