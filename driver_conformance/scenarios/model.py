"""Model-based scenario: random topologies and operations, every delivery checked.

The other scenarios each pin one clause down with a hand-picked topology.
This one lets Hypothesis pick: a rule-based state machine makes RPC servers
join and leave, notification listeners join and leave pools, and sends topic,
server and fanout casts, calls and notifications (some of them requeued once
by the listener that gets them) in random order.  A pure model
(:mod:`driver_conformance.model_checker`) says what each send owes (one copy
among the live servers, one at each live server, one per pool, ...) and
every receipt is counted against it, so a driver that is right for the three
listeners of a hand-written scenario but wrong after a server left, or when a
pool came back, is caught here.

How it is kept bounded and reproducible:

* a fixed budget: ``MAX_EXAMPLES`` runs of at most ``STEPS`` steps (the
  environment variable ``DRIVER_CONFORMANCE_MODEL_EXAMPLES`` raises it for a
  soak run); the Hypothesis seed is fixed (``DRIVER_CONFORMANCE_SEED``
  overrides it), printed, and stored in the report as ``hypothesis_seed``;
  no example database, so a run depends on nothing but the seed;
* each step waits, returning as soon as they are there, for the copies its
  send owes, and fails there if one is missing; each example ends with ONE
  short quiet window, after which nothing extra may have arrived
  (duplicates, copies at the wrong listener, callbacks after ``stop()``);
* each example uses fresh exchange, topic, server and pool names on drivers
  shared by the whole test, and stops and cleans up its listeners;
* a failure is shrunk to a minimal sequence of steps, printed with the
  model's own trace of what each step owed, and raised as a
  ``ModelFailure[<clause>]`` named after the first clause broken.  Shrinking
  is bounded: after the first failure waits and quiet windows are shortened,
  and once ``SHRINK_BUDGET`` seconds are spent the remaining candidates run
  the model only (no driver), so Hypothesis stops early and replays the
  smallest failure found so far (with the whole quiet window).

The machine's plumbing (the session the examples share, listeners, sends
and the wait for what each send owes) is in
:mod:`driver_conformance.scenarios._model_machine`; the rules are here.

Two variants: ``core`` uses only the shared pool (``pool=None``) and never
requeues, so it runs on every driver with RPC and notifications;
``pools-requeue`` adds two named pools and requeued notifications and is
UNSUPPORTED unless the adapter declares both features.  When both run, the
``core`` variant gets a quarter of the examples: the other one covers its
rules too.
"""

from __future__ import annotations

import os
import re
from typing import Any

import oslo_messaging
import pytest
from hypothesis import HealthCheck, Phase, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from hypothesis.stateful import initialize, rule, run_state_machine_as_test

from driver_conformance import model_checker as mc
from driver_conformance.catalog import load_catalog
from driver_conformance.kit import Kit
from driver_conformance.model_checker import first_model_failure
from driver_conformance.scenarios._model_machine import (
    PRIORITY,
    ModelMachineBase,
    Session,
    checked,
)

SEED_ENV = "DRIVER_CONFORMANCE_SEED"
EXAMPLES_ENV = "DRIVER_CONFORMANCE_MODEL_EXAMPLES"
DEFAULT_SEED = 20240611
MAX_EXAMPLES = 8
STEPS = 20
MAX_SERVERS = 3
MAX_LISTENERS = 4
NAMED_POOLS = ("pa", "pb")

CORE_CLAUSES = (
    mc.TOPIC_ONE_COPY,
    mc.TOPIC_REACHES,
    mc.SERVER_REACHES,
    mc.ADDRESS,
    mc.FANOUT,
    mc.REPLY,
    mc.NOTIFY_ONE_COPY,
    mc.STORED,
    mc.NO_CALLBACK_AFTER_STOP,
    mc.UNLIMITED_RETRY,
    mc.NOTIFY_RETRY,
)
VARIANTS = [
    pytest.param("core", marks=pytest.mark.clause(*CORE_CLAUSES), id="core"),
    pytest.param("pools-requeue",
                 marks=pytest.mark.clause(*CORE_CLAUSES, mc.POOL_ONE_COPY, mc.REQUEUE),
                 id="pools-requeue"),
]

#: What one step does; ``which`` picks the server, listener or pool it acts on.
SENDS = ("cast-topic", "cast-server", "fanout", "call", "notify")
CHANGES = ("join-server", "leave-server", "join-pool", "leave-pool")


def make_machine(session: Session, drivers: list[Any], *, pools: bool,
                 requeue: bool) -> type[ModelMachineBase]:
    """The state machine class for one test: its rules depend on the declared features.

    Every example starts from a random topology (``start``); then each
    ``step`` either sends or changes the topology.  The operations are one
    rule with an ``op`` argument rather than a rule each because Hypothesis
    turns a random subset of the rules off in every example (swarm testing):
    worth it over thousands of examples, but with the handful CI affords it
    leaves most examples without fanouts, calls or notifications.
    """
    pool_labels = (mc.DEFAULT_POOL, *NAMED_POOLS) if pools else (mc.DEFAULT_POOL,)
    ops = SENDS + (("notify-requeue",) if requeue else ()) + CHANGES

    class DeliveryModel(ModelMachineBase):
        @initialize(servers=st.integers(1, MAX_SERVERS),
                    pools=st.lists(st.sampled_from(pool_labels), min_size=1,
                                   max_size=MAX_LISTENERS - 1))
        @checked
        def start(self, servers: int, pools: list[str]) -> None:
            for _ in range(servers):
                self.join_server()
            for pool in pools:
                self.join_pool(pool)

        @rule(op=st.sampled_from(ops), which=st.integers(0, MAX_LISTENERS - 1))
        @checked
        def step(self, op: str, which: int) -> None:
            """``op`` on the ``which``-th server, listener or pool (modulo their number).

            Operations the topology does not allow map to one it does, so no
            example is thrown away: a call, a leave or a join over the limit
            with nobody (or everybody) there becomes a join (or a leave).
            """
            model = self.model
            if op == "call" and not model.servers:
                op = "join-server"
            if op == "join-server" and len(model.servers) >= MAX_SERVERS:
                op = "leave-server"
            if op == "leave-server" and not model.servers:
                op = "join-server"
            if op == "join-pool" and len(model.listeners) >= MAX_LISTENERS:
                op = "leave-pool"
            if op == "leave-pool" and not model.listeners:
                op = "join-pool"
            self.session.ops[op] = self.session.ops.get(op, 0) + 1
            if op in CHANGES:
                self.change(op, which)
            elif op == "call":
                self.call(which)
            elif op.startswith("notify"):
                self.notify(requeue=op == "notify-requeue")
            else:
                self.cast(op, which)

        # -- topology -----------------------------------------------------------------------
        def join_server(self) -> None:
            label = self.next_label("s")
            self.model.join_server(label)
            if self.active:
                name = self.server_names[label] = self.kit.names.server()
                target = oslo_messaging.Target(exchange=self.exchange, topic=self.topic,
                                               server=name)
                self.subs[label] = self.kit.listen(self.driver_for(label), target,
                                                   inbox=self.rpc_inbox(label))

        def join_pool(self, pool: str) -> None:
            label = self.next_label("n")
            now_due = self.model.join_listener(label, pool)
            if not self.active:
                return
            target = oslo_messaging.Target(exchange=self.exchange, topic=self.notify_topic)
            self.subs[label] = self.kit.listen_notifications(
                self.driver_for(label), [(target, PRIORITY)], pool=self.pool_names[pool],
                inbox=self.notification_inbox(label, pool))
            if now_due:
                self.session.ops["stored-due"] = self.session.ops.get("stored-due", 0) + 1
                self.settle([s.key for s in now_due])

        def change(self, op: str, which: int) -> None:
            if op == "join-server":
                self.join_server()
                return
            if op == "join-pool":
                self.join_pool(pool_labels[which % len(pool_labels)])
                return
            if op == "leave-server":
                label = self.model.servers[which % len(self.model.servers)]
                self.model.leave_server(label)
            else:
                labels = sorted(self.model.listeners, key=lambda lb: int(lb[1:]))
                label = labels[which % len(labels)]
                self.model.leave_listener(label)
            if self.active:
                self.stop(label)

        # -- sends --------------------------------------------------------------------------
        def message(self, **flags: Any) -> tuple[str, dict[str, Any], dict[str, Any]]:
            key = f"e{self.example}.m{next(self.numbers)}"
            return key, {"key": key, **flags}, {"model-key": key}

        def cast(self, op: str, which: int) -> None:
            """A cast to the topic, a fanout cast, or a cast to a server: ``which``
            modulo (live servers + 1), the last being a name nobody listens on."""
            key, body, ctxt = self.message()
            target = oslo_messaging.Target(exchange=self.exchange, topic=self.topic)
            if op == "cast-topic":
                sent = self.model.topic_cast(key, body, ctxt)
            elif op == "fanout":
                sent = self.model.fanout(key, body, ctxt)
                target.fanout = True
            else:
                servers = self.model.servers
                which %= len(servers) + 1
                label = servers[which] if which < len(servers) else "nobody"
                sent = self.model.server_cast(key, body, ctxt, label)
                if self.active:
                    target.server = self.server_names.get(label) or self.kit.names.server()
            if self.active:
                self.send(sent, target)

        def call(self, which: int) -> None:
            """A call to a live server, or (``which`` past the live servers) to the topic."""
            key, body, ctxt = self.message(call=True)
            servers = self.model.servers
            which %= len(servers) + 1
            if which < len(servers):
                label: str | None = servers[which]
                sent = self.model.server_cast(key, body, ctxt, servers[which], call=True)
            else:
                label = None
                sent = self.model.topic_cast(key, body, ctxt, call=True)
            if not self.active:
                return
            target = oslo_messaging.Target(
                exchange=self.exchange, topic=self.topic,
                server=self.server_names[label] if label else None)
            patience = self.session.patience()
            try:
                reply = self.send(sent, target, wait_for_reply=True, timeout=patience)
            except oslo_messaging.MessagingTimeout as exc:
                self.fail([f"[{mc.REPLY}] {sent.kind} {key}: no reply within "
                           f"{patience:.2f}s ({exc})"], cause=exc)
                return
            by = [r.listener for r in self.ledger.receipts(key)]
            expected = {"key": key, "by": by[0] if by else label}
            if reply != expected:
                self.fail([f"[{mc.REPLY}] {sent.kind} {key}: expected send() to return "
                           f"{expected!r} (the reply of the server that got it), "
                           f"got {reply!r}"])

        def notify(self, *, requeue: bool) -> None:
            """A notification to every pool; with ``requeue`` each pool requeues its
            first copy."""
            key, body, ctxt = self.message(requeue=requeue)
            sent = self.model.notify(key, body, ctxt, pool_labels, requeue=requeue)
            if self.active:
                self.publish(sent)

    DeliveryModel.session = session
    DeliveryModel.drivers = drivers
    DeliveryModel.pools = pool_labels
    DeliveryModel.requeue = requeue
    return DeliveryModel


@pytest.mark.model
@pytest.mark.parametrize("variant", VARIANTS)
def test_random_topologies_follow_the_model(kit: Kit, request: pytest.FixtureRequest,
                                            variant: str) -> None:
    """Hypothesis drives servers, pools and sends; every receipt is checked against the model.

    Built as a state machine rather than a list of fixed cases because the
    bugs it is after live in sequences (a server leaves, then a fanout; a
    pool empties, then a notification, then the pool comes back), and
    Hypothesis shrinks a failing sequence to the few steps that matter.
    """
    kit.require("rpc")
    kit.require("notifications")
    full = variant == "pools-requeue"
    if full:
        kit.require("pools")
        kit.require("requeue")
    seed = int(os.environ.get(SEED_ENV) or DEFAULT_SEED)
    examples = int(os.environ.get(EXAMPLES_ENV) or MAX_EXAMPLES)
    if not full and kit.caps.pools and kit.caps.requeue:
        # The pools-requeue variant runs the same rules and more at the full
        # budget; here the core rules only need a look without named pools.
        examples = max(1, examples // 4)
    node: Any = request.node
    node.user_properties.append(("hypothesis_seed", seed))
    print(f"model scenario ({variant}): hypothesis seed {seed} ({SEED_ENV}), "
          f"{examples} examples of up to {STEPS} steps")
    session = Session(kit, seed)
    drivers = [kit.driver() for _ in range(3)]  # one sender, two for listeners
    machine = make_machine(session, drivers, pools=full, requeue=full)
    hypothesis_seed(seed)(machine)
    try:
        run_state_machine_as_test(machine, settings=settings(
            max_examples=examples,
            stateful_step_count=STEPS,
            deadline=None,
            database=None,
            derandomize=False,
            phases=[Phase.explicit, Phase.generate, Phase.shrink],
            report_multiple_bugs=False,
            print_blob=False,
            suppress_health_check=[HealthCheck.function_scoped_fixture,
                                   HealthCheck.too_slow, HealthCheck.filter_too_much],
        ))
    except BaseException as exc:
        exc.add_note(f"reproduce with {SEED_ENV}={seed} "
                     f"(examples run: {session.examples})")
        violation = first_model_failure(exc)
        clause = violation and re.fullmatch(r"ModelFailure\[(.+)\]", type(violation).__name__)
        if clause and clause.group(1) in load_catalog():
            # The model names the clause its first violation broke; the other
            # clauses this scenario covers are not judged by it.
            lines = str(violation).splitlines()
            kit.judgments.fail(clause.group(1), next(
                (line[2:] for line in lines if line.startswith("- ")), lines[0]))
        raise
    else:
        kit.judgments.passed(*kit.judgments.declared)
    finally:
        node.user_properties.append(("model_ops", dict(sorted(session.ops.items()))))
