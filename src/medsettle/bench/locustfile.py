"""The load's Locust users: each :class:`Counter` is one counter of an institution, signed in with 9001 and
speaking the flows of :mod:`.flows` in the run's mix, as open-loop arrivals or closed loop.

This file is public: it is what ``locust -f`` loads on a worker of another machine, and a user's own
flows file imports it (``from medsettle.bench.flows import flow``) to add flows the mix can name
(docs/load.md). The run's configuration (the centre's URL and credentials, the persons, the mix, the
schedule) comes from ``medsettle bench load`` itself: set directly in its own process, or sent to each
worker as the ``medsettle_config`` message before the counters are spawned. Importing this module imports
Locust, and so patches the process with gevent: only the load driver's processes import it.
"""

from __future__ import annotations

import itertools
import json
import random
import time
import urllib.parse
from decimal import Decimal
from typing import Any

import gevent  # type: ignore[import-untyped]
from locust import FastHttpUser, events, task
from locust.runners import WorkerRunner

from medsettle.bench.figures import Figures
from medsettle.bench.flows import FLOWS, SETTLEMENTS, Person, Refused, Visit, identity_failures, now_text
from medsettle.bench.schedule import arrivals
from medsettle.credentials import InstitutionCredential

CONFIG_MESSAGE = "medsettle_config"
LAG_TICK = 0.01  # ok-float: seconds between two wake-ups of the lag monitor

STATE: dict[str, Any] = {"config": None, "figures": None, "monitor": None}
_local_index = itertools.count()


def configure(config: dict[str, Any]) -> Figures:
    """Take the run's configuration (see :func:`medsettle.bench.run.make_config`) in this process."""
    STATE["config"] = config
    STATE["figures"] = Figures(config["started"])
    parts = urllib.parse.urlsplit(config["centre"])
    Counter.host = f"{parts.scheme}://{parts.netloc}"
    Counter.path = parts.path or "/"
    return STATE["figures"]


def figures() -> Figures | None:
    """This process's figures of the run (None before its configuration came)."""
    return STATE["figures"]


@events.init.add_listener
def _on_init(environment: Any, **_kwargs: Any) -> None:
    runner = environment.runner
    if isinstance(runner, WorkerRunner):
        runner.register_message(CONFIG_MESSAGE, lambda environment, msg, **_kw: configure(msg.data))


@events.report_to_master.add_listener
def _on_report(client_id: str, data: dict[str, Any]) -> None:
    found = figures()
    if found is not None:
        data["medsettle"] = found.snapshot()


def _monitor(found: Figures, until: float) -> None:  # ok-float: wall-clock seconds
    """The driver's own scheduling lag (how late the loop wakes from a short sleep) and its CPU share."""
    cpu0, wall0 = time.process_time(), time.monotonic()
    while time.time() < until:
        before = time.monotonic()
        gevent.sleep(LAG_TICK)
        found.lag[int(round((time.monotonic() - before - LAG_TICK) * 1000))] += 1
        found.cpu_seconds = time.process_time() - cpu0
        found.wall_seconds = time.monotonic() - wall0


def _refusal(status: int, answer: Any, error: Any) -> tuple[str, str]:
    """The code of a failed request: the centre's err_msg code, else what the HTTP exchange says."""
    if isinstance(answer, dict) and isinstance(answer.get("err_msg"), str):
        code, _, message = answer["err_msg"].partition(":")
        return code.strip() or "REFUSED", message.strip()
    if status:
        return f"HTTP_{status}", f"HTTP status {status} without the platform's envelope"
    return "CONNECTION", str(error or "no answer")


class Counter(FastHttpUser):
    """One counter: signs in (9001) as its institution, then takes its bills as the schedule brings them.

    A counter sends one request at a time, as a real one does. In the open loop each bill's first request
    is meant to be sent at the bill's arrival time and each later one as soon as the previous is answered;
    every request's latency runs from that intended time, so a counter held up by a slow centre reports the
    wait of the bills queued behind.
    """

    concurrency = 1
    path = "/"
    connection_timeout = 10.0  # ok-float: seconds
    network_timeout = 60.0  # ok-float: seconds
    max_retries = 0

    def on_start(self) -> None:
        config = STATE["config"]
        found = figures()
        assert config is not None and found is not None, "the run's configuration came before the counters"
        self.config, self.figures = config, found
        if STATE["monitor"] is None:
            STATE["monitor"] = gevent.spawn(_monitor, found, config["started"] + config["duration"] + 5)
        worker = max(0, self.environment.runner.worker_index)
        local = next(_local_index)
        g = local * config["processes"] + worker
        place, chosen, rank, count = config["assignment"][g % len(config["assignment"])]
        inst = config["institutions"][place][chosen]
        self.place, self.code, self.region = place, inst["code"], inst["region"]
        self.credential = InstitutionCredential(inst["code"], inst["paasid"], inst["passtoken"])
        persons = config["persons"][self.region]
        mine = persons[rank::count] or persons
        self.persons = [Person(p, c) for p, c in mine]
        self.codes = tuple(config["codes"][self.region])
        self.flows = config["mix_at"][place]
        self.rng = random.Random(f"{config['run']}-{g}")
        self.prefix = f"L{config['run']}{worker:03d}{local:05d}"  # unique across counters, workers and runs
        self.seq = itertools.count(1)
        self.intended = time.time()
        self.sign_no = ""
        self.finished = False

    def call(self, infno: str, input_: dict[str, Any]) -> dict[str, Any]:
        """Send one request (the flows' :class:`~.flows.Talk`); its latency is measured from ``intended``."""
        body = {
            "infno": infno,
            "msgid": f"{self.prefix}{next(self.seq):08d}",
            "mdtrtarea_admvs": self.region,
            "infver": "V1.0",
            "opter_type": "1",
            "opter": "001",
            "opter_name": "load",
            "inf_time": now_text(),
            "fixmedins_code": self.code,
            "sign_no": self.sign_no,
            "input": input_,
        }
        answer: Any = None
        with self.client.post(
            self.path,
            data=json.dumps(body),
            headers={"Content-Type": "application/json", **self.credential.headers()},
            name=infno,
            catch_response=True,
        ) as resp:
            done = time.time()
            latency_ms = (done - self.intended) * 1000
            resp.request_meta["response_time"] = latency_ms
            resp.request_meta["start_time"] = self.intended
            try:
                answer = json.loads(resp.content or b"", parse_float=Decimal)
            except ValueError:
                answer = None
            ok = isinstance(answer, dict) and answer.get("infcode") == 0
            if ok:
                resp.success()
            else:
                code, message = _refusal(resp.status_code, answer, resp.error)
                resp.failure(code)
        self.figures.answered(done, latency_ms, ok)
        self.intended = done  # the next request of the bill goes as soon as this one is answered
        if not ok:
            self.figures.errors[code] += 1
            raise Refused(infno, code, message)
        output = answer.get("output") or {}
        if infno in SETTLEMENTS:
            self.figures.settlement(identity_failures(output.get("setlinfo") or {}))
        return output

    def _bill(self, index: int) -> None:
        name = self.rng.choices(list(self.flows), weights=list(self.flows.values()))[0]
        visit = Visit(self.persons[index % len(self.persons)], self.codes, self.rng)
        try:
            FLOWS[name].run(self, visit)
        except Refused:
            self.figures.bills_failed += 1
        except Exception as exc:  # noqa: BLE001  a flow that cannot read an answer: counted, and the counter goes on
            self.figures.errors[f"FLOW_ERROR {type(exc).__name__}"] += 1
            self.figures.bills_failed += 1
        self.figures.bills += 1

    @task
    def work(self) -> None:
        """The counter's whole run: sign in, then every bill of the schedule, then idle until stopped."""
        if self.finished:
            gevent.sleep(1)
            return
        config = self.config
        start, duration = config["started"], config["duration"]
        try:
            self.intended = time.time()
            self.sign_no = self.call("9001", {"signIn": {"opter_no": "001", "ip": "127.0.0.1"}})["signinoutb"][
                "sign_no"
            ]
        except Refused:
            self.finished = True
            self.figures.finished += 1
            return
        gevent.sleep(max(0.0, start - time.time()))
        if config["rate"] is None:  # closed loop: back to back
            n = 0
            while time.time() < start + duration:
                self.intended = time.time()
                self.figures.scheduled += 1
                self._bill(n)
                n += 1
        else:
            rate = config["counter_rate"][self.place]
            for n, at in enumerate(arrivals(self.rng, rate, start, duration, config["arrivals"])):
                self.figures.scheduled += 1
                wait = at - time.time()
                if wait > 0:
                    gevent.sleep(wait)
                self.intended = at
                self._bill(n)
        self.finished = True
        self.figures.finished += 1
