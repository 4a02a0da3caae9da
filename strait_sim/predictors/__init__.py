"""Interference and transfer predictors: what a policy believes a batch will take.

Get one by name with :func:`strait_sim.predictors.registry.make_predictor`; copy times
with :class:`strait_sim.predictors.transfer.TransferPredictor`. Accuracy study:
``strait-sim predict evaluate`` (:mod:`strait_sim.predictors.evaluate`).
"""
