"""Inbound SMS keywords in English and Korean (COMPLIANCE 2): opt-out, opt-in, help. Pure text logic.

A message is a keyword when, trimmed, case-folded and stripped of closing
punctuation, it is one of the words, or one of the phrases that clearly revoke
("stop texting me", "please unsubscribe me", "문자 보내지 마세요"). Anything longer or
looser ("don't stop", "cancel my order") is not a keyword: it may be a survey
answer or a question for a person.
"""

from __future__ import annotations

import re
import unicodedata

OPT_OUT = "opt_out"
OPT_IN = "opt_in"
HELP = "help"
# YES re-subscribes only as a reply to a consent request; the caller decides whether it is one.
YES = "yes"

OPT_OUT_WORDS = frozenset(
    {
        "stop",
        "stopall",
        "stop all",
        "unsubscribe",
        "cancel",
        "end",
        "quit",
        "revoke",
        "optout",
        "opt-out",
        "opt out",
        "수신거부",
        "수신 거부",
        "거부",
        "중지",
        "수신중지",
        "수신 중지",
        "그만",
    }
)
OPT_IN_WORDS = frozenset({"start", "unstop", "subscribe", "resubscribe", "수신동의", "수신 동의"})
HELP_WORDS = frozenset({"help", "info", "도움말", "도움", "문의"})
YES_WORDS = frozenset({"yes", "y", "yes please", "예", "네", "동의", "동의합니다"})

_POLITE = r"(?:please\s+|pls\s+|plz\s+)?"
_THANKS = r"(?:\s*,?\s*(?:please|pls|plz|thanks|thank you|thx))?"
_MESSAGES = r"(?:texts?|texting|messages?|messaging|sms|msgs?|these|this|them)"
_ME = r"(?:me|this number|my number)"
_EN_PHRASES = [
    rf"{_POLITE}stop\s+(?:texting|messaging|sending|contacting|spamming|calling)(?:\s+{_ME})?(?:\s+{_MESSAGES})?",
    rf"{_POLITE}stop\s+(?:sending|all)\s+{_MESSAGES}",
    rf"{_POLITE}stop\s+{_MESSAGES}",
    rf"{_POLITE}unsubscribe(?:\s+{_ME})?(?:\s+from\s+(?:this|these|your)(?:\s+list|\s+{_MESSAGES})?)?",
    rf"{_POLITE}(?:opt|take|remove|delete)\s+{_ME}\s+(?:out|off(?:\s+(?:of\s+)?(?:this|the|your)\s+list)?|from\s+(?:this|the|your)\s+list)",
    rf"{_POLITE}(?:do not|don't|dont|never)\s+(?:text|message|contact|sms)\s+{_ME}(?:\s+again|\s+anymore|\s+any more)?",
    rf"no\s+more\s+{_MESSAGES}",
    rf"i\s+(?:want|wish|would like)\s+to\s+(?:unsubscribe|opt out|stop receiving {_MESSAGES})",
    r"leave\s+me\s+alone",
]
_KO_NOUNS = r"(?:(?:광고|문자|메시지|연락)\s*(?:를|은|는|도)?\s*)*"
_KO_PHRASES = [
    rf"{_KO_NOUNS}(?:수신\s*)?(?:거부|중지|그만|차단)\s*(?:합니다|할게요|해\s*주세요|해주세요|부탁드립니다|부탁해요|요)?",
    rf"{_KO_NOUNS}(?:그만|더\s*이상)?\s*(?:보내지|하지)\s*(?:마세요|말아\s*주세요|마십시오|마)",
    rf"{_KO_NOUNS}그만\s*(?:보내세요|보내\s*주세요|보내|받을게요|받겠습니다)",
    rf"(?:더\s*이상\s*)?{_KO_NOUNS}(?:받고\s*싶지\s*않아요|안\s*받을게요|받지\s*않겠습니다)",
]
_PHRASE = re.compile("|".join(f"(?:{p}){_THANKS}" for p in _EN_PHRASES + _KO_PHRASES))
_CLOSING = ".!?~。,;:)\"' \t\r\n"


def normalise(text: str) -> str:
    """Trimmed, case-folded, NFC, inner whitespace collapsed, closing punctuation and emoji dropped."""
    folded = unicodedata.normalize("NFKC", text or "").casefold()
    folded = "".join(ch for ch in folded if unicodedata.category(ch) not in ("So", "Cf"))
    folded = " ".join(folded.split())
    return folded.strip(_CLOSING).lstrip("\"'( ")


def classify(text: str) -> str | None:
    """The keyword kind of an inbound SMS (`opt_out`, `opt_in`, `help`, `yes`), or None when it is none."""
    clean = normalise(text)
    if not clean:
        return None
    if clean in OPT_OUT_WORDS:
        return OPT_OUT
    if clean in OPT_IN_WORDS:
        return OPT_IN
    if clean in HELP_WORDS:
        return HELP
    if clean in YES_WORDS:
        return YES
    if _PHRASE.fullmatch(clean):
        return OPT_OUT
    return None


def is_korean(locale: str | None) -> bool:
    """Whether replies in `locale` are written in Korean."""
    if not locale:
        return False
    return locale.replace("_", "-").lower().split("-")[0] == "ko"


def opt_out_reply(sender: str, korean: bool) -> str:
    """The one confirmation of an opt-out: who, what happened, how to undo it. No marketing."""
    if korean:
        return f"[{sender}] 수신거부가 처리되었습니다. 더 이상 문자를 보내지 않습니다. 다시 받으시려면 START로 답장해 주세요."
    return f"{sender}: you are unsubscribed and will receive no more messages. Reply START to resubscribe."


def opt_in_reply(sender: str, korean: bool) -> str:
    """The confirmation of a re-subscription."""
    if korean:
        return f"[{sender}] 문자 수신이 다시 설정되었습니다. 원치 않으시면 언제든 '수신거부'로 답장해 주세요."
    return f"{sender}: you are subscribed again. Reply STOP to opt out at any time."


def help_reply(sender: str, support: str | None, korean: bool) -> str:
    """The answer to HELP/INFO: the brand and its support contact, and how to opt out."""
    if korean:
        where = f" 문의: {support}." if support else ""
        return f"[{sender}] 고객센터 안내입니다.{where} 수신을 원치 않으시면 '수신거부'로 답장해 주세요."
    where = f" Contact {support}." if support else ""
    return f"{sender}: help is on hand.{where} Reply STOP to opt out."


def reconfirm_reply(sender: str, korean: bool) -> str:
    """The confirmation that an advertising consent was renewed."""
    if korean:
        return f"[{sender}] 광고 수신 동의가 갱신되었습니다. 원치 않으시면 언제든 '수신거부'로 답장해 주세요."
    return f"{sender}: thank you, your consent is renewed. Reply STOP to opt out at any time."


# A number several tenants send from (the shared sender), and a phone that does not tell which of them a
# reply is for: the answers name no sender, since any one named could be the wrong one.


def shared_opt_out_reply(korean: bool) -> str:
    """The one confirmation of an opt-out that reached every sender of a shared number."""
    if korean:
        return "이 번호로 보내는 모든 문자의 수신거부가 처리되었습니다. 다시 받으시려면 START로 답장해 주세요."
    return "You are unsubscribed from all messages from this number. Reply START to resubscribe."


def shared_opt_in_reply(korean: bool) -> str:
    """The confirmation of a re-subscription to every sender of a shared number."""
    if korean:
        return "이 번호로 보내는 문자 수신이 다시 설정되었습니다. 원치 않으시면 언제든 '수신거부'로 답장해 주세요."
    return "You are subscribed again to messages from this number. Reply STOP to opt out at any time."


def shared_help_reply(korean: bool) -> str:
    """The answer to HELP on a shared number: how to opt out of all of its senders."""
    if korean:
        return "이 번호는 여러 발신자가 함께 사용합니다. 모든 문자를 받지 않으시려면 '수신거부'로 답장해 주세요."
    return "This number sends messages for several services. Reply STOP to opt out of all of them."
