"""Evaluation tools that the robot does not install: the main job's driver (`main_job`), the
player that streams a scene or a bag to the node and scores it (`player`), and the HTML report
(`report`). Run from a clone: `scripts/run.sh` (python -m cgc_eval.main_job). They import
`cgc_ros` (the messages and conversions) and `cgc_core`; nothing imports them.
"""
