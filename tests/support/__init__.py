"""Helpers the tests share: data factories, browser steps, mail fixtures."""
