"""The base of every perception node: parameters, QoS, input sync, newest-frame policy, diagnostics, warnings.

A node built on ``PerceptionNode`` only says what it subscribes to, what it publishes and what one frame does:

    class DepthCleanerNode(PerceptionNode):
        def __init__(self, **kwargs):
            super().__init__("depth_cleaner", DEPTH_CLEANER, **kwargs)
            self.pub = self.create_output(Image, "/dcl_arc/depth/cleaned")
            self.start_inputs([InputSpec("depth", "/camera/depth/image_rect_raw", Image)])

        def process(self, frame: Frame) -> None:
            ...  # convert, call the pure pipeline, publish; raise BadInputError for unusable input

What the base does:

- **Parameters** are declared from the node's schema (``ros/params.py``) and read back validated into ``self.params``.
- **QoS** of inputs and outputs comes from ``input_qos`` / ``output_qos`` (default: sensor data in, reliable out).
- **Sync**: with several inputs (image + CameraInfo, + RGB), messages are matched by header stamp within
  ``sync_slop_s`` (``core/sync.py``).
- **Newest frame wins**: subscription callbacks only store matched sets in a short mailbox (``max_pending_frames``,
  default 1); one worker thread processes them. When the model is slower than the camera, the oldest waiting set is
  dropped (counted as "dropped (stale)") instead of queueing, so latency stays bounded by about
  ``max_pending_frames`` processing times. A larger mailbox absorbs short stalls at the cost of latency.
- **Diagnostics** on ``/diagnostics`` (input/output rate, latency p50/p95, drops, bad inputs, provider) and a summary
  in the log every ``log_stats_period_s``.
- **No input**: a loud warning after ``no_input_warn_s`` without messages, naming the topic, the subscription QoS,
  the publishers seen and their QoS, and the DDS profile hint for large best-effort images.
- **Bad input** (``BadInputError`` from ``process``) is logged as a warning naming the problem, rate-limited per
  distinct problem, counted, shown in diagnostics; the node keeps running.
"""

from __future__ import annotations

import os
import re
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.publisher import Publisher
from rclpy.qos import QoSProfile
from rclpy.subscription import Subscription

from dcl_arc_ros.core.errors import CoreError
from dcl_arc_ros.core.stats import NodeStats, ReportThrottle, StatsSnapshot
from dcl_arc_ros.core.sync import NS_PER_S, ApproximateTimeSync
from dcl_arc_ros.dds import apply_dds_profile, describe_dds_environment, profile_path
from dcl_arc_ros.ros.conversions import header_stamp_ns
from dcl_arc_ros.ros.errors import BadInputError, NodeStartupError, ParameterError
from dcl_arc_ros.ros.params import NodeSchema, declare_parameters
from dcl_arc_ros.ros.qos import describe_qos, incompatibility, is_best_effort, qos_profile

DIAGNOSTICS_TOPIC = "/diagnostics"
_DIGITS = re.compile(r"\d+")
BAD_INPUT_REPORT_PERIOD_S = 5.0


@dataclass(frozen=True)
class InputSpec:
    """One subscription: the key the message appears under in ``Frame.msgs``, its default topic and type."""

    key: str
    topic: str
    msg_type: type


@dataclass(frozen=True)
class Frame:
    """One matched set of input messages (at most ``max_pending_frames`` of them wait for the worker)."""

    msgs: dict[str, Any]  # InputSpec.key -> message
    stamp_ns: int  # header stamp of the first (primary) input
    received_at: float  # time.monotonic() when the set was completed
    topics: dict[str, str] = field(default_factory=dict)  # InputSpec.key -> resolved topic name


@dataclass
class _InputState:
    spec: InputSpec
    subscription: Subscription
    qos: QoSProfile
    last_received: float | None = None
    last_warned: float | None = None


class PerceptionNode(Node):
    """Base class; subclasses implement ``process(frame)`` and may override ``diagnostic_values()``."""

    def __init__(self, node_name: str, schema: NodeSchema, **node_kwargs: Any) -> None:
        super().__init__(node_name, **node_kwargs)
        self.schema = schema
        self.params: dict[str, Any] = declare_parameters(self, schema)
        self.stats = NodeStats()
        self.provider = "none"
        self._started_at = time.monotonic()
        self._inputs: dict[str, _InputState] = {}
        self._sync: ApproximateTimeSync[tuple[Any, float]] | None = None
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        # Matched frames waiting for the worker; when full, the oldest is dropped (newest frame wins).
        self._pending: deque[Frame] = deque(maxlen=int(self.params["max_pending_frames"]))
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._throttle = ReportThrottle(BAD_INPUT_REPORT_PERIOD_S)
        self._last_problem = ""
        self._last_problem_at: float | None = None
        self._last_emitted_at: float | None = None
        self._last_stats_log = time.monotonic()
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, DIAGNOSTICS_TOPIC, 10)
        self._timers = [
            self.create_timer(float(self.params["diagnostics_period_s"]), self._publish_diagnostics),
            self.create_timer(1.0, self._watchdog),
        ]

    # --- set-up helpers for subclasses ---------------------------------------------------------------------------

    @property
    def input_qos(self) -> QoSProfile:
        return qos_profile(self.params["input_qos"])

    @property
    def output_qos(self) -> QoSProfile:
        return qos_profile(self.params["output_qos"])

    def create_output(self, msg_type: type, topic: str) -> Publisher:
        """A publisher with the ``output_qos`` profile."""
        return self.create_publisher(msg_type, topic, self.output_qos)

    def start_inputs(self, inputs: Sequence[InputSpec]) -> None:
        """Subscribe to ``inputs`` (synchronised by stamp when more than one) and start the worker thread.

        The first input is the primary one: its rate is the node's input rate and its stamp the frame's stamp.
        """
        if self._sync is not None:
            raise RuntimeError(f"{self.get_name()}: start_inputs() called twice")
        if not inputs:
            raise ValueError(f"{self.get_name()}: start_inputs() needs at least one input")
        slop_ns = round(float(self.params["sync_slop_s"]) * NS_PER_S)
        self._sync = ApproximateTimeSync([spec.key for spec in inputs], slop_ns=slop_ns)
        qos = self.input_qos
        for spec in inputs:
            subscription = self.create_subscription(
                spec.msg_type, spec.topic, lambda msg, key=spec.key: self._on_message(key, msg), qos
            )
            self._inputs[spec.key] = _InputState(spec=spec, subscription=subscription, qos=qos)
        self._worker = threading.Thread(target=self._work, name=f"{self.get_name()}-worker", daemon=True)
        self._worker.start()
        described = "; ".join(f"{s.subscription.topic_name} [{describe_qos(s.qos)}]" for s in self._inputs.values())
        self.get_logger().info(
            f"listening on {described}; sync slop {self.params['sync_slop_s']} s; "
            + describe_dds_environment(os.environ)
        )

    def input_topic(self, key: str) -> str:
        """The resolved (remapped) topic name of one input."""
        return self._inputs[key].subscription.topic_name

    # --- what subclasses implement -------------------------------------------------------------------------------

    def process(self, frame: Frame) -> None:
        """Convert, run the pure pipeline, publish. Raise ``BadInputError`` for input that cannot be used."""
        raise NotImplementedError

    def diagnostic_values(self) -> list[tuple[str, str]]:
        """Extra (key, value) pairs for the diagnostics status (model file, backend, ...)."""
        return []

    # --- reporting -----------------------------------------------------------------------------------------------

    def report_input_problem(self, text: str) -> None:
        """Log a warning about the input and show it in diagnostics.

        Rate-limited per kind of problem: the text with its numbers masked, so "12 pixels are inf" and "13 pixels
        are inf" are one kind (one line per period), while a wrong encoding and a wrong size are both logged.
        """
        now = time.monotonic()
        with self._lock:
            self._last_problem = text
            self._last_problem_at = now
            emit, suppressed = self._throttle.check(_DIGITS.sub("#", text), now)
        if emit:
            more = f" ({suppressed} similar reports suppressed)" if suppressed else ""
            self.get_logger().warning(f"{text}{more}")

    def stats_snapshot(self) -> StatsSnapshot:
        with self._lock:
            return self.stats.snapshot(time.monotonic())

    @property
    def last_problem(self) -> str:
        return self._last_problem

    # --- message flow --------------------------------------------------------------------------------------------

    def _on_message(self, key: str, msg: Any) -> None:
        now = time.monotonic()
        assert self._sync is not None
        primary = self._sync.keys[0]
        with self._lock:
            state = self._inputs[key]
            state.last_received = now
            if key == primary:
                self.stats.input_received(now)
            matched = self._sync.add(key, header_stamp_ns(msg.header), (msg, now))
            self.stats.dropped_unsynced = self._sync.stats.unmatched
            if matched is None:
                return
            frame = Frame(
                msgs={str(k): stamped.item[0] for k, stamped in matched.items()},
                stamp_ns=matched[primary].stamp_ns,
                received_at=now,
                topics={k: s.subscription.topic_name for k, s in self._inputs.items()},
            )
            self._last_emitted_at = now
            if len(self._pending) == self._pending.maxlen:
                self.stats.dropped_stale += 1
            self._pending.append(frame)
            self._wake.notify()

    def _work(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                while not self._pending and not self._stop.is_set():
                    self._wake.wait(timeout=0.2)
                frame = self._pending.popleft() if self._pending else None
            if frame is None:
                continue
            self._process_one(frame)

    def _process_one(self, frame: Frame) -> None:
        try:
            self.process(frame)
        except (BadInputError, CoreError) as exc:
            with self._lock:
                self.stats.bad_inputs += 1
            topics = ", ".join(frame.topics.values())
            self.report_input_problem(f"bad input on {topics}: {exc}")
            return
        except Exception as exc:  # keep the node alive; the traceback goes to the log
            if not self.context.ok():
                # Ctrl-C / SIGTERM shut the context down under the worker: the frame in flight could not be
                # published, and neither could a warning about it. That is the shutdown, not a processing error.
                return
            with self._lock:
                self.stats.errors += 1
            detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            self.report_input_problem(f"processing failed: {detail}")
            self.get_logger().debug(traceback.format_exc())
            return
        done = time.monotonic()
        with self._lock:
            self.stats.output_published(done, done - frame.received_at)

    # --- diagnostics and warnings --------------------------------------------------------------------------------

    def _silent_inputs(self, now: float) -> list[tuple[_InputState, float]]:
        limit = float(self.params["no_input_warn_s"])
        if limit <= 0.0:
            return []
        silent = []
        for state in self._inputs.values():
            since = now - (state.last_received if state.last_received is not None else self._started_at)
            if since >= limit:
                silent.append((state, since))
        return silent

    def _no_input_message(self, state: _InputState, since: float) -> str:
        topic = state.subscription.topic_name
        type_name = f"{state.spec.msg_type.__module__.split('.')[0]}/{state.spec.msg_type.__name__}"
        never = "no message has ever arrived" if state.last_received is None else f"the last one was {since:.1f} s ago"
        parts = [
            f"NO INPUT on {topic} ({type_name}) for {since:.1f} s: {never}. "
            f"Subscription QoS: {describe_qos(state.qos)}."
        ]
        publishers = self.get_publishers_info_by_topic(topic)
        if not publishers:
            parts.append("No publisher on this topic: is the camera running, and is the topic name/remapping right?")
        else:
            for info in publishers:
                why = incompatibility(state.qos, info.qos_profile)
                text = (
                    f"Publisher {info.node_namespace.rstrip('/')}/{info.node_name} [{describe_qos(info.qos_profile)}]"
                )
                parts.append(f"{text}: {why}." if why else f"{text} is QoS-compatible.")
            if is_best_effort(state.qos) or any(is_best_effort(i.qos_profile) for i in publishers):
                try:
                    profile = str(profile_path())
                except FileNotFoundError:
                    profile = "config/fastdds_profile.xml"
                parts.append(
                    "Large best-effort images across processes are dropped by Fast DDS's default shared-memory "
                    f"segment: start the PUBLISHER (camera driver) with FASTDDS_DEFAULT_PROFILES_FILE={profile} "
                    "(FASTRTPS_DEFAULT_PROFILES_FILE on Humble), or set input_qos:=reliable."
                )
        return " ".join(parts)

    def _watchdog(self) -> None:
        now = time.monotonic()
        limit = float(self.params["no_input_warn_s"])
        for state, since in self._silent_inputs(now):
            if state.last_warned is None or now - state.last_warned >= limit:
                state.last_warned = now
                self.get_logger().warning(self._no_input_message(state, since))
        # Every input arrives but no set matches: the stamps disagree by more than the slop.
        if limit > 0.0 and len(self._inputs) > 1 and not self._silent_inputs(now):
            last = self._last_emitted_at if self._last_emitted_at is not None else self._started_at
            if now - last >= limit:
                self.report_input_problem(
                    f"inputs {', '.join(s.subscription.topic_name for s in self._inputs.values())} all arrive but "
                    f"their stamps never match within sync_slop_s={self.params['sync_slop_s']} s "
                    f"(unmatched: {self.stats.dropped_unsynced}); check the drivers' clocks or raise sync_slop_s"
                )
        period = float(self.params["log_stats_period_s"])
        if period > 0.0 and now - self._last_stats_log >= period:
            self._last_stats_log = now
            self.get_logger().info(f"stats: {self.stats_snapshot().summary()}; provider {self.provider}")

    def _diagnostic_status(self) -> DiagnosticStatus:
        now = time.monotonic()
        snapshot = self.stats_snapshot()
        silent = self._silent_inputs(now)
        recent_problem = self._last_problem_at is not None and now - self._last_problem_at < BAD_INPUT_REPORT_PERIOD_S
        if silent:
            level = DiagnosticStatus.WARN
            message = "no input on " + ", ".join(s.subscription.topic_name for s, _ in silent)
        elif recent_problem:
            level = DiagnosticStatus.WARN
            message = self._last_problem
        else:
            level = DiagnosticStatus.OK
            message = "running"
        values = [
            *snapshot.as_key_values(),
            ("provider", self.provider),
            ("last problem", self._last_problem),
            *((f"input {k}", f"{s.subscription.topic_name} [{describe_qos(s.qos)}]") for k, s in self._inputs.items()),
            *self.diagnostic_values(),
        ]
        return DiagnosticStatus(
            level=level,
            name=f"{self.get_name()}: perception",
            message=message,
            hardware_id=self.get_fully_qualified_name(),
            values=[KeyValue(key=k, value=v) for k, v in values],
        )

    def _publish_diagnostics(self) -> None:
        array = DiagnosticArray()
        array.header.stamp = self.get_clock().now().to_msg()
        array.status = [self._diagnostic_status()]
        self._diagnostics_pub.publish(array)

    # --- shutdown ------------------------------------------------------------------------------------------------

    def destroy_node(self) -> None:
        self._stop.set()
        with self._lock:
            self._wake.notify_all()
        if self._worker is not None and self._worker is not threading.current_thread():
            self._worker.join(timeout=5.0)
        super().destroy_node()


def run_node(factory: Callable[[], PerceptionNode], *, prog: str, args: Sequence[str] | None = None) -> int:
    """The body of every node's ``main``: DDS profile, rclpy.init, build, spin, clean shutdown.

    Start-up errors (missing model, bad parameter) are printed to stderr naming the file or the value, and the
    process exits with status 2; Ctrl-C and SIGTERM exit 0.
    """
    applied = apply_dds_profile()
    rclpy.init(args=list(args) if args is not None else sys.argv)
    node: PerceptionNode | None = None
    try:
        node = factory()
        if applied:
            node.get_logger().debug(f"applied the shipped Fast DDS profile {applied}")
        rclpy.spin(node)
    except (NodeStartupError, ParameterError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr, flush=True)
        return 2
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0
