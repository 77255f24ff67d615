"""factory_boy factories for the core rows."""

from __future__ import annotations

import factory

from requests_app.models import Collection, Content, Message, Processing, Request, Transform
from requests_app.models.statuses import CollectionRelationType, RequestType


class RequestFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Request

    request_type = RequestType.OTHER
    scope = "test"
    name = factory.Sequence(lambda n: f"request.{n}")
    requester = "tester"
    workload_id = factory.Sequence(lambda n: 1000 + n)
    request_metadata = factory.LazyFunction(
        lambda: {"files": 3, "files_per_poll": 10, "transient_polls": 0, "fail_files": [], "permanent_submit": False}
    )


class TransformFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Transform

    request = factory.SubFactory(RequestFactory)
    transform_type = RequestType.OTHER
    workload_id = factory.SelfAttribute("request.workload_id")


class ProcessingFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Processing

    transform = factory.SubFactory(TransformFactory)
    request = factory.SelfAttribute("transform.request")


class CollectionFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Collection

    transform = factory.SubFactory(TransformFactory)
    request = factory.SelfAttribute("transform.request")
    relation_type = CollectionRelationType.OUTPUT
    scope = "test"
    name = factory.Sequence(lambda n: f"dataset.{n}")


class ContentFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Content

    collection = factory.SubFactory(CollectionFactory)
    scope = "test"
    name = factory.Sequence(lambda n: f"file.{n}")
    bytes = 100


class MessageFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Message

    msg_id = factory.Sequence(lambda n: f"msg-{n:08d}")
    msg_type = "file_countdown"
    transform = factory.SubFactory(TransformFactory)
    request = factory.SelfAttribute("transform.request")
    workload_id = factory.SelfAttribute("transform.workload_id")
    body = factory.LazyAttribute(lambda m: {"msg_type": m.msg_type, "files": []})
