"""One driver, two clocks: the event loop shared by simulation and live runs.

- :mod:`~strait_sim.driver.driver`: the driver (slots, request states, records, actions);
- :mod:`~strait_sim.driver.clocks`: SimPy virtual time, or the wall clock with an inbox;
- :mod:`~strait_sim.driver.arrivals`: open-loop streams and closed-loop sessions;
- :mod:`~strait_sim.driver.view`: the read-only view policies see;
- :mod:`~strait_sim.driver.batch`, :mod:`~strait_sim.driver.states`,
  :mod:`~strait_sim.driver.rules`: a batch as policies see it, the request state machine,
  the dispatch rules.

The devices below the driver are in :mod:`strait_sim.devices`.
"""
