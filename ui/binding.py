"""One binding between a page's config and the places that carry it: the URL and widget state.

A config travels as the flat keys of its ``to_dict()`` (the generic :func:`dlopt_core.config.flatten`),
the same keys MLflow logs and the CLI reads. Every page follows the same rules:

- a link is read once per browser session; a link that sets some keys gets the page's defaults
  for the rest, and one that does not validate shows the defaults with a message;
- when Streamlit dropped the state of any of the page's probe widgets, the page's last settings
  are put back (never a selectbox's first option);
- while the form does not validate, the URL keeps the last valid config.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

import streamlit as st

from dlopt_core.config import ConfigError
from ui.widgets import code_span

# Keys a URL may repeat: each value is one registry entry (``optimizer=sgd&optimizer=adam``).
LIST_KEYS = ("optimizer", "augment", "methods", "learners")


class Linkable(Protocol):
    def to_dict(self) -> dict[str, Any]: ...


C = TypeVar("C", bound=Linkable)


def query_dict() -> dict[str, Any]:
    """The URL's query parameters; the :data:`LIST_KEYS` are always lists."""
    qp = st.query_params
    return {k: qp.get_all(k) if k in LIST_KEYS else qp.get(k) for k in qp.keys()}


def write_query(flat: dict[str, Any], *, page: str | None = None) -> None:
    """Put ``flat`` in the URL, only when it differs (every write is a browser round trip).

    ``page``: also keep it as that page's last settings, which :meth:`Binding.preamble` puts back
    when Streamlit dropped the page's widget state.
    """
    if page is not None:
        st.session_state[f"{page}._last"] = flat
    wanted = {k: [str(x) for x in v] if isinstance(v, list) else str(v) for k, v in flat.items()}
    if wanted != query_dict():
        st.query_params.from_dict(wanted)


def with_defaults(flat: Mapping[str, Any], default: Linkable) -> dict[str, Any]:
    """A partial link completed with the page's defaults.

    ``?epochs=5`` keeps every other default; a link that names a model, data set, optimizer or
    schedule drops the default's settings of it (``model=cnn`` takes no MLP widths).
    """
    named = {k for k in flat if "." not in k}
    kept = {k: v for k, v in default.to_dict().items() if k.split(".")[0] not in named or k in named}
    return {**kept, **flat}


@dataclass(frozen=True)
class ViewKey:
    """A view option that travels in the URL beside the config (an axis, a band, a worker count).

    ``choices`` are the widget's values, the first the default; the URL holds ``str(value)``
    (booleans in lower case) and only when it is not the default.
    """

    url: str
    state: str
    choices: tuple[Any, ...]

    def text(self, value: Any) -> str:
        return str(value).lower() if isinstance(value, bool) else str(value)

    def read(self, raw: Any) -> Any:
        """The widget value a link's text names; the default for anything else."""
        return next((c for c in self.choices if self.text(c) == raw), self.choices[0])


@dataclass(frozen=True)
class Binding(Generic[C]):
    """How one page's config reaches its widgets and the URL, and comes back.

    ``set_state`` puts a config into the widgets' state before they are drawn; ``probes`` are
    the widget keys whose loss means Streamlit dropped the page's state; ``to_url`` writes the
    config's flat keys (a sweep leaves out the lr it replaces).
    """

    prefix: str
    parse: Callable[[dict[str, Any]], C]
    default: C
    set_state: Callable[[C], None]
    probes: tuple[str, ...]
    views: tuple[ViewKey, ...] = ()
    to_url: Callable[[C], dict[str, Any]] = field(default=lambda cfg: cfg.to_dict())
    noun: str = "run"

    def preamble(self) -> None:
        """The first step of every page: the link (or the last settings) into the widgets' state,
        a settings choice made with :meth:`offer` put back, and a bad link's message."""
        if (loaded := self._from_url()) is not None:
            cfg, flat = loaded
            self.set_state(cfg)
            for view in self.views:
                st.session_state[view.state] = view.read(flat.get(view.url))
        if (flat := st.session_state.pop(f"{self.prefix}._restore", None)) is not None:
            self.set_state(self.parse(flat))
        if err := st.session_state.pop(f"{self.prefix}._url_error", None):
            st.warning(err)

    def _from_url(self) -> tuple[C, dict[str, Any]] | None:
        s = st.session_state
        if s.get(f"{self.prefix}._loaded"):
            if all(p in s for p in self.probes):
                return None
            # Streamlit cleans up the state of widgets a run did not draw (another page's run; once
            # seen on a second tab, which kept the data set's and lost the model's).
            if (last := s.get(f"{self.prefix}._last")) is not None:
                try:
                    return self.parse(last), last
                except ConfigError:
                    pass
        s[f"{self.prefix}._loaded"] = True
        flat = query_dict()
        if not flat:
            return self.default, flat
        try:
            qp = st.query_params
            if twice := next((k for k in qp if k not in LIST_KEYS and len(qp.get_all(k)) > 1), None):
                raise ConfigError(f"{twice[:60]}: given more than once; give it once")
            views = {v.url for v in self.views}
            return self.parse(with_defaults({k: v for k, v in flat.items() if k not in views}, self.default)), flat
        except ConfigError as err:
            s[f"{self.prefix}._url_error"] = (
                f"The link's settings were not valid ({code_span(str(err))}); showing defaults."
            )
            return self.default, flat

    def sync(self, cfg: C | None, **view: Any) -> None:
        """Write ``cfg`` and the view options to the URL when they changed; an invalid form
        (``cfg`` is ``None``) leaves the link at the last valid config."""
        if cfg is None:
            return
        flat = self.to_url(cfg)
        for v in self.views:
            if v.url in view and view[v.url] != v.choices[0]:
                flat[v.url] = v.text(view[v.url])
        write_query(flat, page=self.prefix)

    def remember(self, cfg: C) -> None:
        """Note the config this browser session started last (see :meth:`offer_last`)."""
        st.session_state[f"{self.prefix}._last_job"] = cfg.to_dict()

    def restore_later(self, flat: dict[str, Any]) -> None:
        """Put ``flat``'s settings into the widgets on the next run (a button's callback)."""
        st.session_state[f"{self.prefix}._restore"] = flat

    def last_started(self) -> C | None:
        """The config this browser session started last, if any."""
        flat = st.session_state.get(f"{self.prefix}._last_job")
        return None if flat is None else self.parse(flat)

    def offer_last(self, find: Callable[[C], Any]) -> None:
        """When the form changed after Run, a button back to the session's last job (if this
        server still has it)."""
        if (cfg := self.last_started()) is None or (job := find(cfg)) is None:
            return
        state = "is still running" if job.active else "finished"
        st.button(
            f"Your last {self.noun} ({job.status}) used other settings and {state}: show it",
            icon=":material/history:", on_click=self.restore_later, args=(cfg.to_dict(),),
        )

    def open(self, cfg: C, *, page: str) -> None:
        """Switch to ``page`` with ``cfg`` in its link, read afresh there (it reads a link once)."""
        st.session_state.pop(f"{self.prefix}._loaded", None)
        query = {k: v if isinstance(v, list) else str(v) for k, v in self.to_url(cfg).items()}
        st.switch_page(page, query_params=query)
