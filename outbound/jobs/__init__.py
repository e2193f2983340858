"""Jobs: the duties the scheduler runs on the wall clock and the simulator runs on a simulated one."""
