"""Pruning explorer (placeholder page until the explorer lands)."""

import streamlit as st

import pruning

st.set_page_config(page_title="Pruning explorer", layout="wide")
st.title("Pruning explorer")
st.dataframe(pruning.catalogue())
