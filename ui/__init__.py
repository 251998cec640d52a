"""Streamlit helpers shared by the pages: forms, live job views, sidebar status."""
