"""A read-only web view of the embedded backend's store, served by the API server on ClearML's UI routes (the
``web_server`` the SDK prints links to)."""

from clearml_local.webview.routes import Response, WebView, is_web_path

__all__ = ["Response", "WebView", "is_web_path"]
