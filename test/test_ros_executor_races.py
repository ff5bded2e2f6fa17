"""The node's spin loop survives rclpy's wait-set / destruction race (ros2/rclpy#1206).

A lifecycle transition destroys the input subscriptions on one executor thread while another builds a wait
set; plain ``MultiThreadedExecutor.spin()`` then raises InvalidHandle and the node process ends (seen once
in ``make stress``'s lifecycle-during-inference case under CI load; this setup, a subscription created and
destroyed every few milliseconds beside a 1 kHz publisher, ended plain ``spin()`` within 5 cycles when
this test was written)."""
from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def test_subscriptions_destroyed_while_the_executor_waits_do_not_end_the_spin_loop():
    rclpy = pytest.importorskip("rclpy", reason="rclpy is not installed")
    from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
    from rclpy.context import Context
    from rclpy.executors import MultiThreadedExecutor
    from std_msgs.msg import String

    from ckd_ros.ros.node import spin_through_destruction_races

    os.environ.setdefault("ROS_LOG_DIR", str(REPO / "build" / "ros_log"))
    context = Context()
    rclpy.init(context=context, domain_id=66)
    node = rclpy.create_node("destruction_race", context=context)
    executor = MultiThreadedExecutor(num_threads=3, context=context)
    try:
        pub = node.create_publisher(String, "chatter", 10)
        node.create_timer(0.001, lambda: pub.publish(String(data="x")))
        executor.add_node(node)
        races: list[Exception] = []
        errors: list[Exception] = []

        def spin() -> None:
            try:
                spin_through_destruction_races(executor, races.append)
            except Exception as exc:    # what would have ended the node
                errors.append(exc)

        thread = threading.Thread(target=spin, daemon=True)
        thread.start()
        for _ in range(80):
            sub = node.create_subscription(String, "chatter", lambda msg: None, 1,
                                           callback_group=MutuallyExclusiveCallbackGroup())
            time.sleep(0.005)
            node.destroy_subscription(sub)
            assert not errors, errors
        # still serving: a new subscription receives
        received = threading.Event()
        node.create_subscription(String, "chatter", lambda msg: received.set(), 1)
        assert received.wait(10.0), "the executor stopped delivering messages"
        assert thread.is_alive() and not errors, errors
    finally:
        rclpy.shutdown(context=context)
        executor.shutdown(timeout_sec=2.0)
        node.destroy_node()


def test_a_shutdown_landing_between_the_spin_check_and_the_wait_set_is_a_clean_stop():
    """rclpy's deferred signal handler shuts the context down on its own thread; a SIGINT that lands after
    ``spin``'s ``context.ok()`` check makes building the next wait set raise RCLError (it ended the node
    in ``make stress``'s SIGINT-during-flood case). Here the shutdown is placed exactly there, every time."""
    rclpy = pytest.importorskip("rclpy", reason="rclpy is not installed")
    from rclpy.context import Context
    from rclpy.executors import MultiThreadedExecutor
    from rclpy.impl.implementation_singleton import rclpy_implementation

    from ckd_ros.ros.node import spin_through_destruction_races

    os.environ.setdefault("ROS_LOG_DIR", str(REPO / "build" / "ros_log"))

    class SignalAfterTheCheck(MultiThreadedExecutor):
        def spin_once(self, timeout_sec: float | None = None) -> None:
            if self.context.ok():
                self.context.shutdown()         # what the signal handler's thread does
            super().spin_once(timeout_sec)

    def spin_with(run) -> None:
        context = Context()
        rclpy.init(context=context, domain_id=66)
        node = rclpy.create_node("shutdown_race", context=context)
        executor = SignalAfterTheCheck(num_threads=2, context=context)
        executor.add_node(node)
        try:
            run(executor)
        finally:
            executor.shutdown(timeout_sec=2.0)
            node.destroy_node()

    # the race is real: plain spin() dies of it
    with pytest.raises(rclpy_implementation.RCLError, match="context is not valid"):
        spin_with(lambda executor: executor.spin())
    races: list[Exception] = []
    spin_with(lambda executor: spin_through_destruction_races(executor, races.append))   # returns
    assert races == [], "a shutdown is a stop, not a race to count"
