"""The webhook endpoints' REST routes: thin doors over ``threads.webhooks.services``."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from threads.api.serializers import page_of
from threads.api.views import ERRORS, paginated

from . import services
from .serializers import (
    DeliverySerializer,
    EndpointStateSerializer,
    WebhookCreateRequest,
    WebhookEndpointSerializer,
    WebhookEndpointWithSecretSerializer,
    WebhookPatchRequest,
)

NEWEST_FIRST = [("created_at", True), ("id", True)]


class WebhookListView(APIView):
    @extend_schema(
        operation_id="webhooks_list",
        summary="List the organization's webhook endpoints.",
        responses={200: page_of(WebhookEndpointSerializer), **ERRORS},
    )
    def get(self, request):
        endpoints = services.endpoint_qs(request.user.organization)
        return paginated(request, endpoints, WebhookEndpointSerializer, NEWEST_FIRST)

    @extend_schema(
        operation_id="webhooks_create",
        summary="Create an endpoint; its secret is shown once.",
        request=WebhookCreateRequest,
        responses={201: WebhookEndpointWithSecretSerializer, **ERRORS},
    )
    def post(self, request):
        endpoint = services.endpoint_create(org=request.user.organization, data=request.data)
        return Response(
            WebhookEndpointWithSecretSerializer(endpoint).data,
            status=201,
            headers={"Location": f"/api/v1/webhooks/{endpoint.pk}"},
        )


class WebhookDetailView(APIView):
    @extend_schema(
        operation_id="webhooks_retrieve",
        summary="Get one endpoint.",
        responses={200: WebhookEndpointSerializer, **ERRORS},
    )
    def get(self, request, webhook_id):
        endpoint = services.endpoint_get(request.user.organization, webhook_id)
        return Response(WebhookEndpointSerializer(endpoint).data)

    @extend_schema(
        operation_id="webhooks_update",
        summary="Change an endpoint's url, actions, description or isActive.",
        request=WebhookPatchRequest,
        responses={200: WebhookEndpointSerializer, **ERRORS},
    )
    def patch(self, request, webhook_id):
        endpoint = services.endpoint_update(org=request.user.organization, endpoint_id=webhook_id, data=request.data)
        return Response(WebhookEndpointSerializer(endpoint).data)

    @extend_schema(
        operation_id="webhooks_delete",
        summary="Delete an endpoint.",
        responses={204: None, **ERRORS},
    )
    def delete(self, request, webhook_id):
        services.endpoint_delete(org=request.user.organization, endpoint_id=webhook_id)
        return Response(status=204)


class WebhookRotateSecretView(APIView):
    @extend_schema(
        operation_id="webhooks_rotate_secret",
        summary="A new secret, shown once; the old one also signs for 24 hours.",
        request=None,
        responses={200: WebhookEndpointWithSecretSerializer, **ERRORS},
    )
    def post(self, request, webhook_id):
        endpoint = services.endpoint_rotate_secret(org=request.user.organization, endpoint_id=webhook_id)
        return Response(WebhookEndpointWithSecretSerializer(endpoint).data)


class DeliveryPage(page_of(DeliverySerializer)):
    endpoint = EndpointStateSerializer(help_text="The endpoint's state: disabled (and why), failing, probed.")


DeliveryPage.__name__ = "PaginatedDeliveryList"


class WebhookDeliveriesView(APIView):
    @extend_schema(
        operation_id="webhooks_deliveries",
        summary="An endpoint's deliveries, newest first, and the endpoint's state.",
        responses={200: DeliveryPage, **ERRORS},
    )
    def get(self, request, webhook_id):
        endpoint = services.endpoint_get(request.user.organization, webhook_id)
        response = paginated(request, endpoint.deliveries.all(), DeliverySerializer, [("id", True), ("id", True)])
        response.data = {"endpoint": EndpointStateSerializer(endpoint).data, **response.data}
        return response
