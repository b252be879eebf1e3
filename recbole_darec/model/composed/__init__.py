"""Backbone + alignment-head compositions: semantic tables, DaRec and RLMRec head mixins, zoo adapter."""
