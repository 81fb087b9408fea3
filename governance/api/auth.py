"""Token login and logout (django-rest-knox: hashed, expiring tokens), audited."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from knox.auth import TokenAuthentication
from rest_framework import serializers, status
from rest_framework.authentication import BasicAuthentication
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from governance.accounts import api_token_issue, api_token_revoke
from governance.policy import access_of, team_ids_visible_to


class LoginApi(APIView):
    """Exchange a username and password (HTTP Basic) for a new API token."""

    authentication_classes = [BasicAuthentication]

    class OutputSerializer(serializers.Serializer):
        token = serializers.CharField()
        expiry = serializers.DateTimeField()

    @extend_schema(summary="Create an API token", request=None, responses=OutputSerializer)
    def post(self, request: Request) -> Response:
        token, expiry = api_token_issue(user=request.user, actor=request.user)
        return Response(self.OutputSerializer({"token": token, "expiry": expiry}).data, status=status.HTTP_201_CREATED)


class LogoutApi(APIView):
    """Revoke the token used for this request."""

    authentication_classes = [TokenAuthentication]

    @extend_schema(summary="Revoke the current API token", request=None, responses={204: None})
    def post(self, request: Request) -> Response:
        api_token_revoke(user=request.user, token=request.auth)
        return Response(status=status.HTTP_204_NO_CONTENT)


class WhoAmIApi(APIView):
    """Return the authenticated user, their roles, the capabilities those roles grant and their teams."""

    @extend_schema(
        summary="The current user",
        responses=inline_serializer("WhoAmI", {"username": serializers.CharField(),
                                               "roles": serializers.ListField(child=serializers.CharField()),
                                               "capabilities": serializers.ListField(child=serializers.CharField()),
                                               "teams": serializers.ListField(child=serializers.CharField()),
                                               "sees_all_teams": serializers.BooleanField()}),
    )
    def get(self, request: Request) -> Response:
        access = access_of(request.user)
        return Response({"username": request.user.username, "roles": sorted(r.value for r in access.roles),
                         "capabilities": sorted(c.value for c in access.capabilities),
                         "teams": sorted(request.user.teams.values_list("slug", flat=True)),
                         "sees_all_teams": team_ids_visible_to(request.user) is None})
