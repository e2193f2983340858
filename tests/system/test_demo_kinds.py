"""The demo shows each campaign kind: batch runs, survey scores, conversions and revenue against the holdout."""

import io

from rich.console import Console

from outbound.demo.run import run_demo


def test_the_demo_report_shows_survey_scores_conversions_against_the_holdout_and_each_kind(tmp_path):
    output = io.StringIO()
    figures = run_demo(tmp_path, seed=7, console=Console(file=output, width=220))
    text = output.getvalue()
    # The batch win-back ran on its cron for both shops, and gave out offer codes.
    assert figures["batch_runs"] >= 8 and figures["offer_codes"] > 0
    # NPS by SMS reply and CSAT by email click, counted per campaign.
    scales = {entry["scale"] for entry in figures["surveys"].values() if entry["counted"]}
    assert scales == {"nps", "csat"}
    assert "NPS" in text and "CSAT" in text and "recovery calls" in text
    # Treated contacts against the holdout, with revenue, for the campaigns that hold some out.
    held = {key: row for key, row in figures["conversions"].items() if row["holdout"]}
    assert {key.split("/")[1] for key in held} >= {"churn_winback", "lapsed_winback", "cart_abandonment"}
    assert (
        sum(row["revenue"] for row in held.values()) > 0 and sum(row["holdout_converted"] for row in held.values()) > 0
    )
    assert "Conversions and revenue against the holdout" in text and "lift" in text
    # Both arms of the A/B test sent, some SMS fell back to email, agents ended some lead nurtures.
    assert {key.rsplit("/", 1)[1] for key in figures["variants"]} == {"a", "b"}
    assert figures["leads"]["callbacks"] > 0 and figures["leads"]["ended_by_agent"] > 0
    assert "support_csat" in text and "lapsed_winback" in text
