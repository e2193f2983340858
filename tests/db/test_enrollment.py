"""Trigger rules turn events into enrollments and scheduled messages; exit events cancel them."""

from datetime import timedelta

from sqlalchemy import select

from outbound.db.models import CallbackTask, Enrollment


def _enrollments(world, **where):
    with world.runtime.factory() as session:
        query = select(Enrollment)
        for name, value in where.items():
            query = query.where(getattr(Enrollment, name) == value)
        return list(session.scalars(query))


def test_cart_abandoned_schedules_email_after_one_hour_and_sms_after_a_day(world, clock):
    tenant = world.tenant()
    world.contact(tenant, "c1", phone="+12025550143", email="a@example.com")
    world.event(tenant, "cart_abandoned", "c1", {"cart_id": "cart-1", "value": 150})
    messages = world.messages()
    assert [(m.step, m.channel, m.status) for m in messages] == [
        ("email_1h", "email", "scheduled"),
        ("sms_24h", "sms", "scheduled"),
    ]
    assert messages[0].due_at == clock.now() + timedelta(hours=1)
    assert messages[1].due_at == clock.now() + timedelta(hours=24)
    assert all(m.purpose == "marketing" for m in messages)


def test_trigger_condition_false_enrolls_nobody(world):
    tenant = world.tenant()
    world.contact(tenant, "c1", email="a@example.com")
    world.event(tenant, "cart_abandoned", "c1", {"cart_id": "cart-1", "value": 20})
    assert _enrollments(world) == []
    assert world.messages() == []


def test_same_cart_twice_within_the_window_enrolls_once_but_another_cart_enrolls_again(world, clock):
    tenant = world.tenant()
    world.contact(tenant, "c1", email="a@example.com")
    world.event(tenant, "cart_abandoned", "c1", {"cart_id": "cart-1", "value": 150})
    clock.advance(timedelta(hours=2))
    world.event(tenant, "cart_abandoned", "c1", {"cart_id": "cart-1", "value": 150})
    world.event(tenant, "cart_abandoned", "c1", {"cart_id": "cart-2", "value": 150})
    assert sorted(e.dedupe_key for e in _enrollments(world)) == ["cart-1", "cart-2"]


def test_same_cart_after_the_window_enrolls_again(world, clock):
    tenant = world.tenant()
    world.contact(tenant, "c1", email="a@example.com")
    world.event(tenant, "cart_abandoned", "c1", {"cart_id": "cart-1", "value": 150})
    clock.advance(timedelta(days=7, seconds=1))
    world.event(tenant, "cart_abandoned", "c1", {"cart_id": "cart-1", "value": 150})
    assert len(_enrollments(world, dedupe_key="cart-1")) == 2


def test_order_for_that_cart_exits_the_enrollment_and_cancels_pending_messages(world, clock):
    tenant = world.tenant()
    world.contact(tenant, "c1", phone="+12025550143", email="a@example.com")
    world.event(tenant, "cart_abandoned", "c1", {"cart_id": "cart-1", "value": 150})
    clock.advance(timedelta(minutes=30))
    world.event(tenant, "order_placed", "c1", {"cart_id": "cart-1", "order_id": "o-1", "value": 150})
    assert {m.status for m in world.messages()} == {"cancelled"}
    assert all(m.rule == "exit" and "order_placed" in m.reason for m in world.messages())
    [enrollment] = _enrollments(world)
    assert enrollment.status == "exited"


def test_order_for_another_cart_leaves_the_enrollment_running(world, clock):
    tenant = world.tenant()
    world.contact(tenant, "c1", email="a@example.com")
    world.event(tenant, "cart_abandoned", "c1", {"cart_id": "cart-1", "value": 150})
    world.event(tenant, "order_placed", "c1", {"cart_id": "cart-9", "order_id": "o-1", "value": 150})
    assert {m.status for m in world.messages()} == {"scheduled"}
    assert _enrollments(world)[0].status == "active"


def test_a_step_whose_condition_is_false_is_not_scheduled(world):
    tenant = world.tenant()
    world.contact(tenant, "c1", email="a@example.com")  # no phone: the SMS step's `when` is false
    world.event(tenant, "cart_abandoned", "c1", {"cart_id": "cart-1", "value": 150})
    assert [m.step for m in world.messages()] == ["email_1h"]


def test_a_lead_gets_a_callback_task_for_agents(world):
    tenant = world.tenant()
    world.contact(tenant, "lead-1", phone="+12025550143", email="lead@example.com")
    world.event(tenant, "lead_created", "lead-1", {"source": "webinar"})
    with world.runtime.factory() as session:
        [task] = session.scalars(select(CallbackTask)).all()
    assert (task.campaign, task.status, task.priority) == ("lead", "open", 10)
    assert "call within 5 minutes" in task.reason


def test_a_repeated_event_id_enrolls_only_once(world):
    tenant = world.tenant()
    world.contact(tenant, "c1", email="a@example.com")
    first = world.event(tenant, "shipping_delayed", "c1", {"order_id": "o-1"}, id="evt-same")
    second = world.event(tenant, "shipping_delayed", "c1", {"order_id": "o-1"}, id="evt-same")
    assert (first.stored, second.duplicates) == (1, 1)
    assert len(_enrollments(world)) == 1


def test_events_of_one_tenant_never_enroll_contacts_of_another(world):
    us = world.tenant("shop-us")
    kr = world.tenant("shop-kr", jurisdiction="KR", timezone="Asia/Seoul", locale="ko")
    world.contact(us, "same-id", email="us@example.com")
    world.contact(kr, "same-id", email="kr@example.com")
    world.event(kr, "cart_abandoned", "same-id", {"cart_id": "c", "value": 500})
    [enrollment] = _enrollments(world)
    assert enrollment.tenant_id == kr.id
