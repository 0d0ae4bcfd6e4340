"""Operating-system collectors: /proc, /sys and psutil, container- and cgroup-aware."""
