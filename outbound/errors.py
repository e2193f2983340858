"""The exceptions of outbound: one root, each with a docstring that says what went wrong."""


class OutboundError(Exception):
    """Something outbound could not do."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


class DefinitionError(OutboundError):
    """A campaign, trigger or template file is invalid."""

    def __init__(self, file: str, message: str, line: int | None = None, field: str | None = None) -> None:
        self.file, self.line, self.field, self.detail = file, line, field, message
        where = file if line is None else f"{file}:{line}"
        super().__init__(f"{where}: {field + ': ' if field else ''}{message}")


class InvalidInput(OutboundError):
    """Input (an event, a contact, an API body) is invalid."""

    def __init__(self, message: str, field: str | None = None) -> None:
        self.field = field
        super().__init__(f"{field}: {message}" if field else message)


class UnknownTenant(OutboundError):
    """No such tenant."""


class NotFound(OutboundError):
    """The thing asked for does not exist."""


class ConfigurationError(OutboundError):
    """The settings do not allow this to start (a missing or weak secret, for one)."""
