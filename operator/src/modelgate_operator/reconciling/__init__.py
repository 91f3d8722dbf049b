"""The level-triggered loop: render, publish, count the rollout, write statuses."""
