# MicroPython entry point of the simulated charger: `micropython -m sim_boot ARGS.json`, started
# by tools/sim.py. It mounts the flash image, starts the world and the control socket, then runs
# the firmware (`main.run(board, preset)`) and restarts it in-process when it returns "reset".
# EOF on stdin (the supervisor closing the pipe) is an orderly shutdown.
import asyncio
import gc
import json
import os
import sys

import board as board_module

import sim_control
import sim_flash
import sim_net

WORLD_TICK_MS = 100
CRASH_REBOOT_MS = 1000  # a crashed firmware reboots after this, like a watchdog would
STOP_GRACE_MS = 2000
CERT_FILES = ("csms_root.der", "cp_cert.der", "cp_key.der")


def log(msg):
    sys.stderr.write("SIM: %s\n" % msg)


def say(line):
    try:
        print(line)
        sys.stdout.flush()
    except AttributeError:
        pass  # no flush(): unbuffered on the unix port anyway
    except OSError:
        pass  # nobody reads our stdout any more (closed pipe): keep running


def _makedirs(path):
    cur = ""
    for part in path.split("/"):
        if part:
            cur += "/" + part
            try:
                os.mkdir(cur)
            except OSError:
                pass


def install_certs(certs, directory):
    """Copy the DER files tools/sim.py prepared into the flash (when they differ)."""
    if not certs:
        return
    _makedirs(directory)
    for name in CERT_FILES:
        src = certs.get(name)
        if not src:
            continue
        with open(src, "rb") as f:
            data = f.read()
        dst = directory + "/" + name
        try:
            with open(dst, "rb") as f:
                if f.read() == data:
                    continue
        except OSError:
            pass
        with open(dst + ".tmp", "wb") as f:
            f.write(data)
        os.rename(dst + ".tmp", dst)


class TaskTracker:
    """Records the tasks the firmware creates, so a restart can cancel those it left running."""

    def __init__(self):
        self.tasks = []
        self._orig = asyncio.create_task

    def _create(self, coro):
        t = self._orig(coro)
        if len(self.tasks) >= 32:
            self.tasks = [x for x in self.tasks if not x.done()]
        self.tasks.append(t)
        return t

    def install(self):
        asyncio.create_task = self._create

    def uninstall(self):
        asyncio.create_task = self._orig

    async def cancel_all(self):
        left = [t for t in self.tasks if not t.done()]
        self.tasks = []
        for t in left:
            t.cancel()
        if left:
            await asyncio.sleep_ms(0)  # let them run their cancellation


class Sim:
    def __init__(self, args):
        self.args = args
        self.board = board_module.Board(args)
        self.control = sim_control.ControlServer(self.board)
        self.wake = asyncio.Event()
        self.stopping = False
        self.result = None
        self.tracker = TaskTracker()

    def preset(self):
        p = {}
        if self.args.get("csms"):
            p["CentralSystemURL"] = self.args["csms"]
        if self.args.get("id"):
            p["ChargePointId"] = self.args["id"]
        p.update(self.args.get("set") or {})
        return p

    async def world_loop(self):
        w = self.board.world
        while True:
            w.update()
            self.board.sample_heap()
            await asyncio.sleep_ms(WORLD_TICK_MS)

    async def watch_stdin(self):
        r = asyncio.StreamReader(sys.stdin)
        while True:
            line = await r.readline()
            if not line:
                break
        self.stopping = True
        self.wake.set()

    async def run_firmware(self, main):
        try:
            self.result = await main.run(self.board, self.preset())
        except asyncio.CancelledError:
            self.result = "cancelled"
            raise
        except Exception as e:
            self.result = "crash"
            log("firmware crashed:")
            sys.print_exception(e, sys.stderr)
        finally:
            self.wake.set()

    async def stop_firmware(self, task):
        if not task.done():
            task.cancel()
            try:
                await asyncio.wait_for_ms(task, STOP_GRACE_MS)
            except BaseException:  # CancelledError, TimeoutError, or what the firmware raised
                pass
        self.tracker.uninstall()
        await self.tracker.cancel_all()
        await sim_net.close_all()

    async def main(self):
        host = self.args.get("control_host", "127.0.0.1")
        port = self.args["control_port"]
        try:
            await self.control.start(host, port)
        except OSError as e:
            log("cannot listen on %s:%d: %r" % (host, port, e))
            return 1
        asyncio.create_task(self.world_loop())
        asyncio.create_task(self.watch_stdin())
        baseline = set(sys.modules)
        self.board.heap_sim = self.board.sample_heap()  # the sim's own share of the heap
        while True:
            self.board.power_on()
            self.tracker.install()  # before the import: `from asyncio import create_task` is seen too
            try:
                import main
            except Exception as e:
                self.tracker.uninstall()
                log("cannot import the firmware's main:")
                sys.print_exception(e, sys.stderr)
                return 1
            self.wake.clear()
            self.result = None
            fw = asyncio.create_task(self.run_firmware(main))
            await asyncio.sleep_ms(0)  # let run() start before announcing
            say("SIM READY control=%s:%d" % (host, port))
            await self.wake.wait()
            if not fw.done() or self.stopping:
                await self.stop_firmware(fw)
                return 0
            await self.stop_firmware(fw)
            reason = self.result
            if reason == "exit":
                return 0
            if reason == "crash":
                await asyncio.sleep_ms(CRASH_REBOOT_MS)
            elif reason != "reset":
                log("main.run returned %r, restarting" % (reason,))
            for name in list(sys.modules):
                if name not in baseline:
                    del sys.modules[name]
            main = None
            gc.collect()
            if self.stopping:
                return 0


def boot(path):
    with open(path) as f:
        args = json.load(f)
    mount = args.get("flash_mount", "/flash")
    dev = sim_flash.mount(args["flash_image"], mount, args.get("flash_blocks", sim_flash.DEFAULT_BLOCKS))
    rc = 1
    try:
        install_certs(args.get("certs"), mount + "/certs")
        sim = Sim(args)
        rc = asyncio.run(sim.main())
    except KeyboardInterrupt:
        rc = 0
    finally:
        sim_flash.unmount(dev, mount)
    return rc


if __name__ == "__main__":
    if len(sys.argv) < 2:
        log("usage: micropython -m sim_boot ARGS.json")
        sys.exit(2)
    sys.exit(boot(sys.argv[-1]))
