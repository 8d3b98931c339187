"""The one place that imports ``dnslib`` for the DNS service package."""
try:
    import dnslib
except ImportError as exc:  # pragma: no cover - dnslib is in the test extra
    raise ImportError(
        "aiomisc_c.service.dns needs dnslib: pip install 'aiomisc_c[dns]'",
        name=exc.name,
    ) from exc

__all__ = ("dnslib",)
