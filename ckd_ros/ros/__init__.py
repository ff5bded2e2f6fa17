"""ROS 2 adapters around the CKD tracker: image conversion, synchronisation, messages, the managed node.

Only this package (with ``ckd_ros.tracker_node`` and ``ckd_ros.demo``) imports rclpy and ROS messages.
The submodules are imported explicitly by their users so that ``import ckd_ros.ros.images`` stays cheap
(no torch, no node).
"""
