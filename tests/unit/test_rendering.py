"""Rendering: per-locale files with fallback, strict undefined names, html escaping, SMS segment math."""

from __future__ import annotations

from pathlib import Path

import pytest

from outbound.rendering.templates import Renderer, RenderError, TemplateNotFound, locale_chain, sms_segments

SHIPPED = Path(__file__).resolve().parents[2] / "templates"


def context(**overrides) -> dict:
    names = {
        "contact": {
            "external_id": "cust-42",
            "phone": "+821012345678",
            "email": "a@example.com",
            "locale": "ko",
            "timezone": "Asia/Seoul",
            "attributes": {"first_name": "Minji"},
        },
        "event": {
            "type": "cart_abandoned",
            "occurred_at": "2026-11-20T00:00:00+00:00",
            "data": {"cart_id": "c-9", "order_id": "o-7", "new_eta": "2026-11-25", "score": 0.9},
        },
        "tenant": {
            "slug": "shop",
            "name": "Shop",
            "jurisdiction": "KR",
            "sender_name": "Hanbit Mall",
            "support_contact": "1588-1234",
            "postal_address": "1 Main St, Springfield, IL 62701, USA",
            "optout_number": "080-123-4567",
            "email_from": "shop@example.com",
            "sms_from": "+15005550006",
        },
        "campaign": "cart_abandonment",
        "step": "email_1h",
        "links": {"unsubscribe": "https://outbound.example/u/TOKEN"},
    }
    names.update(overrides)
    return names


@pytest.fixture
def templates(tmp_path) -> Path:
    folder = tmp_path / "templates"
    (folder / "hello").mkdir(parents=True)
    (folder / "hello" / "sms.en.j2").write_text(
        "Hi {{ contact.attributes.first_name }} from {{ tenant.sender_name }}\n"
    )
    (folder / "hello" / "sms.ko.j2").write_text("{{ contact.attributes.first_name }}님 안녕하세요\n")
    (folder / "hello" / "email.en.j2").write_text(
        "{% block subject %}  Hello\n  {{ contact.attributes.first_name }} {% endblock %}\n"
        "{% block text %}\nDear {{ contact.attributes.first_name }},\nbye\n{% endblock %}\n"
        "{% block html %}<p>{{ contact.attributes.first_name }}</p>{% endblock %}\n"
    )
    (folder / "broken").mkdir()
    (folder / "broken" / "sms.en.j2").write_text("line one\nline two {{ contact.nickname }}\n")
    return folder


def test_an_sms_file_is_the_whole_body_without_its_trailing_newline(templates):
    rendered = Renderer(templates).render("hello", "sms", ["en"], context())
    assert (rendered.subject, rendered.text, rendered.html, rendered.locale) == (
        None,
        "Hi Minji from Hanbit Mall",
        None,
        "en",
    )


def test_the_first_locale_with_a_file_is_used(templates):
    renderer = Renderer(templates)
    assert renderer.render("hello", "sms", ["ko", "en"], context()).text == "Minji님 안녕하세요"
    fallback = renderer.render("hello", "email", ["ko-KR", "ko", "en"], context())
    assert fallback.locale == "en" and fallback.text.startswith("Dear Minji")


def test_an_email_has_a_one_line_subject_a_text_and_an_html_body(templates):
    rendered = Renderer(templates).render("hello", "email", ["en"], context())
    assert rendered.subject == "Hello Minji"
    assert rendered.text == "Dear Minji,\nbye"
    assert rendered.html == "<p>Minji</p>"


def test_only_the_html_body_is_escaped(templates):
    names = context(contact={**context()["contact"], "attributes": {"first_name": "<b>Tom & Jerry</b>"}})
    rendered = Renderer(templates).render("hello", "email", ["en"], names)
    assert rendered.text == "Dear <b>Tom & Jerry</b>,\nbye"
    assert rendered.html == "<p>&lt;b&gt;Tom &amp; Jerry&lt;/b&gt;</p>"


def test_no_file_in_any_locale_is_an_error_naming_template_channel_and_locales(templates):
    with pytest.raises(TemplateNotFound) as caught:
        Renderer(templates).render("hello", "email", ["ko", "fr"], context())
    assert "'hello'" in str(caught.value) and "email" in str(caught.value) and "ko, fr" in str(caught.value)


def test_an_undefined_name_is_a_render_error_naming_the_file_and_line(templates):
    with pytest.raises(RenderError) as caught:
        Renderer(templates).render("broken", "sms", ["en"], context())
    assert caught.value.file == "templates/broken/sms.en.j2" and caught.value.line == 2
    assert "nickname" in str(caught.value)


def test_an_undefined_name_in_an_email_block_names_the_line_of_that_block(templates):
    (templates / "hello" / "email.ko.j2").write_text(
        "{% block subject %}Hi{% endblock %}\n{% block text %}\nok\n{{ links.survey }}\n{% endblock %}\n"
    )
    with pytest.raises(RenderError) as caught:
        Renderer(templates).render("hello", "email", ["ko"], context())
    assert (caught.value.file, caught.value.line) == ("templates/hello/email.ko.j2", 4)


READS = [
    "contact.attributes.first_name",
    "contact.email",
    "contact.attributes.get('first_name')",
    "contact.attributes.get('nickname', 'friend')",
    "contact.attributes.items() | list",
    "contact.attributes.keys",
    "event.data.items",
    "event.data['items']",
    "contact['email']",
    "contact.attributes.nickname is defined",
    "contact.nickname",
    "contact.__class__",
    "contact.__class__.__mro__",
    "contact.attributes.__len__",
    "contact.attributes.update({'x': 1})",
    "contact.mro",
    "tenant.sender_name.upper()",
    "tenant.sender_name.__class__",
]


@pytest.mark.parametrize("expression", READS)
def test_a_template_reads_a_dict_as_jinjas_own_sandbox_does(tmp_path, expression):
    """The renderer reads `name.key` of a dict without trying an attribute first; the answer (or the refusal)
    is what Jinja's immutable sandbox gives, whether the key is a dict method's name, missing or unsafe."""
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    (tmp_path / "t" / "reads").mkdir(parents=True)
    (tmp_path / "t" / "reads" / "sms.en.j2").write_text(f"{{{{ {expression} }}}}")
    names = context(event={**context()["event"], "data": {"items": "a key named items", "x": 1}})

    def answer(render):
        try:
            return "ok", render()
        except Exception as error:  # the renderer wraps it; compare what Jinja raised
            cause = error.__cause__ if isinstance(error, RenderError) else error
            return "error", type(cause).__name__, str(cause)

    expected = answer(
        lambda: ImmutableSandboxedEnvironment(undefined=StrictUndefined)
        .from_string(f"{{{{ {expression} }}}}")
        .render(names)
        .strip()
    )
    assert answer(lambda: Renderer(tmp_path / "t").render("reads", "sms", ["en"], names).text) == expected


def test_available_locales_lists_the_files_of_a_template_per_channel(templates):
    renderer = Renderer(templates)
    assert renderer.available_locales("hello", "sms") == ["en", "ko"]
    assert renderer.available_locales("hello", "email") == ["en"]
    assert renderer.available_locales("nothing", "sms") == []


def test_the_locale_chain_goes_contact_then_language_then_tenant_then_english():
    assert locale_chain("ko-KR", "ja") == ["ko-KR", "ko", "ja", "en"]
    assert locale_chain(None, "ko") == ["ko", "en"]
    assert locale_chain("en_US", "en") == ["en-US", "en"]


@pytest.mark.parametrize(
    ("text", "encoding", "characters", "segments"),
    [
        ("a" * 160, "GSM-7", 160, 1),
        ("a" * 161, "GSM-7", 161, 2),
        ("a" * 306, "GSM-7", 306, 2),
        ("a" * 307, "GSM-7", 307, 3),
        ("가" * 70, "UCS-2", 70, 1),
        ("가" * 71, "UCS-2", 71, 2),
        ("가" * 134, "UCS-2", 134, 2),
        ("가" * 135, "UCS-2", 135, 3),
        ("€" * 80, "GSM-7", 160, 1),
        ("{" * 81, "GSM-7", 162, 2),
        ("a" * 159 + "€", "GSM-7", 161, 2),
        ("", "GSM-7", 0, 0),
    ],
)
def test_sms_segments_at_the_boundaries(text, encoding, characters, segments):
    info = sms_segments(text)
    assert (info.encoding, info.characters, info.segments) == (encoding, characters, segments)


def test_an_extension_character_is_not_split_across_two_segments():
    # 152 septets then '€' (2): it does not fit in the first 153, so it opens a second segment.
    assert sms_segments("a" * 152 + "€" + "a" * 152).segments == 3


def test_an_emoji_counts_two_utf16_units_and_makes_the_message_ucs2():
    info = sms_segments("a" * 68 + "😀")
    assert (info.encoding, info.characters, info.segments) == ("UCS-2", 70, 1)


@pytest.mark.parametrize("template", ["cart_reminder", "winback_offer"])
def test_shipped_korean_marketing_sms_has_the_advertising_format(template):
    text = Renderer(SHIPPED).render(template, "sms", ["ko"], context()).text
    assert text.startswith("(광고)")
    assert "Hanbit Mall" in text and "1588-1234" in text
    assert text.endswith("무료수신거부 080-123-4567")


@pytest.mark.parametrize("template", ["cart_reminder", "winback_offer", "lead_welcome"])
def test_shipped_korean_marketing_email_has_the_advertising_format(template):
    rendered = Renderer(SHIPPED).render(template, "email", ["ko"], context())
    assert rendered.subject.startswith("(광고)")
    assert "Hanbit Mall" in rendered.text and "1588-1234" in rendered.text
    assert rendered.text.endswith("무료수신거부 080-123-4567")


@pytest.mark.parametrize("template", ["cart_reminder", "winback_offer", "lead_welcome"])
def test_shipped_english_marketing_email_carries_postal_address_and_unsubscribe_link(template):
    rendered = Renderer(SHIPPED).render(template, "email", ["en"], context())
    for body in (rendered.text, rendered.html):
        assert "1 Main St, Springfield, IL 62701, USA" in body
        assert "https://outbound.example/u/TOKEN" in body


def _tenant(jurisdiction: str) -> dict:
    return {**context()["tenant"], "jurisdiction": jurisdiction}


@pytest.mark.parametrize("template", ["cart_reminder", "winback_offer"])
def test_shipped_english_marketing_sms_ends_with_the_opt_out_line(template):
    text = Renderer(SHIPPED).render(template, "sms", ["en"], context(tenant=_tenant("US"))).text
    assert text.endswith("Reply STOP to opt out") and "(광고)" not in text


@pytest.mark.parametrize("template", ["cart_reminder", "winback_offer"])
def test_shipped_english_marketing_sms_of_a_korean_tenant_keeps_the_korean_advertising_format(template):
    text = Renderer(SHIPPED).render(template, "sms", ["en"], context(tenant=_tenant("KR"))).text
    assert text.startswith("(광고)") and text.endswith("무료수신거부 080-123-4567")


@pytest.mark.parametrize("template", ["cart_reminder", "winback_offer", "lead_welcome"])
def test_shipped_english_marketing_email_of_a_korean_tenant_is_marked_as_advertising(template):
    rendered = Renderer(SHIPPED).render(template, "email", ["en"], context(tenant=_tenant("KR")))
    assert rendered.subject.startswith("(광고)") and "무료수신거부 080-123-4567" in rendered.text


@pytest.mark.parametrize("locale", ["en", "ko"])
def test_shipped_shipping_delay_shows_the_order_and_new_eta_on_both_channels(locale):
    renderer = Renderer(SHIPPED)
    for channel in ("sms", "email"):
        text = renderer.render("shipping_delay", channel, [locale], context()).text
        assert "o-7" in text and "2026-11-25" in text


@pytest.mark.parametrize("locale", ["en", "ko"])
def test_shipped_delivery_survey_asks_for_a_zero_to_ten_reply(locale):
    text = Renderer(SHIPPED).render("delivery_survey", "sms", [locale], context()).text
    assert "0" in text and "10" in text and ("Reply" in text or "답장" in text)
