"""Token login and logout (django-rest-knox: hashed, expiring tokens), audited; the password login
sits behind the brute-force lockout and a per-address throttle (governance/logins.py)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, inline_serializer
from knox.auth import TokenAuthentication
from rest_framework import exceptions, serializers, status
from rest_framework.authentication import BasicAuthentication
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from governance.accounts import api_token_issue, api_token_revoke, api_tokens_revoke_all
from governance.api.throttles import LoginThrottle
from governance.logins import api_login_authenticate
from governance.policy import access_of, team_ids_visible_to


class LockoutBasicAuthentication(BasicAuthentication):
    """HTTP Basic whose password check refuses a locked-out username (429) and audits every failure."""

    def authenticate_credentials(self, userid: str, password: str, request: Any = None) -> tuple[Any, None]:
        user = api_login_authenticate(request=request, username=userid, password=password)
        if user is None:
            raise exceptions.AuthenticationFailed("invalid username or password")
        return user, None


class LoginApi(APIView):
    """Exchange a username and password (HTTP Basic) for a new API token."""

    authentication_classes = [LockoutBasicAuthentication]
    throttle_classes = [LoginThrottle]

    class OutputSerializer(serializers.Serializer):
        token = serializers.CharField()
        expiry = serializers.DateTimeField()

    def perform_authentication(self, request: Request) -> None:
        # DRF checks throttles after authentication; here the throttle must come first, or a
        # throttled client would still have its password checked (and its guesses counted).
        self.check_throttles(request)
        self._throttles_checked = True
        super().perform_authentication(request)

    def check_throttles(self, request: Request) -> None:
        if not getattr(self, "_throttles_checked", False):
            super().check_throttles(request)

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


class LogoutAllApi(APIView):
    """Revoke every API token of the authenticated user, this one included."""

    authentication_classes = [TokenAuthentication]

    @extend_schema(summary="Revoke all my API tokens", request=None,
                   responses=inline_serializer("TokensRevoked", {"revoked": serializers.IntegerField()}))
    def post(self, request: Request) -> Response:
        return Response({"revoked": api_tokens_revoke_all(user=request.user)})


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
