# MicroPython side of the test harness: proves that tests run on the Unix port, from the .mpy build.
import sys


def test_runs_on_micropython():
    assert sys.implementation.name == "micropython"


def test_board_module_is_compiled():
    import board

    assert board.__file__.endswith(".mpy"), board.__file__


async def test_async_tests_run():
    import asyncio

    await asyncio.sleep_ms(1)
