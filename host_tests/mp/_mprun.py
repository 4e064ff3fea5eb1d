# Runs inside the MicroPython Unix port: imports one test module and runs the named tests.
# One line per test on stdout: "@@RESULT <name> ok|fail <len>" then <len> bytes of traceback.
import asyncio
import io
import sys


def _run(mod, name):
    fn = getattr(mod, name)
    res = fn()
    if hasattr(res, "send"):  # an async test
        asyncio.run(res)
        asyncio.new_event_loop()


def main():
    modname = sys.argv[1]
    mod = __import__(modname)
    for name in sys.argv[2:]:
        try:
            _run(mod, name)
            out = ""
            status = "ok"
        except BaseException as e:  # report everything, including SystemExit from the code under test
            buf = io.StringIO()
            sys.print_exception(e, buf)
            out = buf.getvalue()
            status = "fail"
        data = out.encode()
        sys.stdout.write("@@RESULT %s %s %d\n" % (name, status, len(data)))
        sys.stdout.write(out)
        sys.stdout.write("\n")


main()
