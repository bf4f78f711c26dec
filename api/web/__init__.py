"""The web page's static files (`static/`): plain HTML, CSS and JavaScript, no build step.

`api.routers.web` serves them; this package holds no Python code, only the data files.
"""
