"""Behaviour detectors: one interface (:mod:`.base`), rules (:mod:`.rules`), the model (:mod:`.model`)."""

from forewarn.behaviour.detectors.base import DETECTORS, Detector, registered, signal_id
from forewarn.behaviour.detectors.model import NumberRiskModel
from forewarn.behaviour.detectors.rules import MassDiallingFreshSim, RoamingFraud, SimBox, SpoofedCli, Wangiri

__all__ = ["DETECTORS", "Detector", "MassDiallingFreshSim", "NumberRiskModel", "RoamingFraud", "SimBox",
           "SpoofedCli", "Wangiri", "registered", "signal_id"]
