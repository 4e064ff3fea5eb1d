"""Fixtures for the integration tests: the CSMS simulator and simulated chargers."""

import pytest

pytest_plugins = ["mp_plugin"]

# Reconnect quickly in tests; the defaults (3 s + up to 10 s jitter) suit a real site.
FAST_LINK = {"RetryBackOffWaitMinimum": 1, "RetryBackOffRandomRange": 0, "RetryBackOffRepeatTimes": 1}


@pytest.fixture(scope="session")
def built():
    from build import build

    build("sim", quiet=True)


@pytest.fixture
def csms(built, tmp_path):
    from csms import CsmsSimulator

    server = CsmsSimulator(port=0, log_file=str(tmp_path / "csms.log"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def make_sim(built, tmp_path, request):
    """make_sim(csms=url, sets={...}, ...) starts a simulated charger and waits for SIM READY."""
    from simctl import SimProcess

    sims = []

    def make(**kw):
        kw.setdefault("data", tmp_path / f"data{len(sims)}")
        kw["sets"] = {**FAST_LINK, **kw.get("sets", {})}
        sim = SimProcess(log_path=tmp_path / f"sim{len(sims)}.log", **kw)
        sims.append(sim)
        return sim.start()

    yield make
    for i, sim in enumerate(sims):
        sim.close()
        request.node.add_report_section("teardown", f"sim{i} log", sim.log_tail(80))
