# Atomic small files on littlefs: write a temp file, close it, rename over the target.
# littlefs renames atomically, so a power cut leaves the old content or the new, never a mix.
# Never flush() such a file half-written: a mid-way sync commits a partial file.
import json
import os

TMP_SUFFIX = ".tmp"


def write_json(path, obj):
    tmp = path + TMP_SUFFIX
    with open(tmp, "w") as f:
        json.dump(obj, f)  # streams to the file, no big string in RAM
    os.rename(tmp, path)


def read_json(path, default=None):
    """The stored object, or `default` when the file is missing or unreadable (corrupt)."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return default


def remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


def makedirs(path):
    """mkdir -p for the few levels a store needs."""
    cur = ""
    for part in path.split("/"):
        if not part:
            continue
        cur += "/" + part
        try:
            os.mkdir(cur)
        except OSError:
            pass  # exists


def clean_temp(directory):
    """Delete temp files a power cut left behind (their target is intact)."""
    try:
        names = os.listdir(directory)
    except OSError:
        return 0
    n = 0
    for name in names:
        if name.endswith(TMP_SUFFIX):
            remove(directory + "/" + name)
            n += 1
    return n
