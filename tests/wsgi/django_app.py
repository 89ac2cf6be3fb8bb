"""A Django project in one module for the WSGI tests (``tests.wsgi.django_app:application``).

Settings are configured here with ``settings.configure`` (no settings module, no database).
"""

from __future__ import annotations

import django
from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="tests-only-not-secret",
    ROOT_URLCONF=__name__,
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    MIDDLEWARE=[
        "django.middleware.common.CommonMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
    ],
    INSTALLED_APPS=[],
    USE_TZ=True,
)
django.setup()

from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import HttpRequest, HttpResponse, JsonResponse  # noqa: E402
from django.shortcuts import redirect  # noqa: E402
from django.urls import path  # noqa: E402
from django.views.decorators.csrf import csrf_exempt  # noqa: E402


def search(request: HttpRequest) -> JsonResponse:
    return JsonResponse(
        {
            "q": request.GET.get("q"),
            "tags": request.GET.getlist("tag"),
            "path": request.path,
            "script_name": request.META.get("SCRIPT_NAME"),
        }
    )


@csrf_exempt
def form(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        name = request.POST.get("name", "")
        return redirect(f"/hello/?name={name}")
    return HttpResponse("<form method=post><input name=name></form>")


def hello(request: HttpRequest) -> HttpResponse:
    return HttpResponse(f"hello {request.GET.get('name')}", content_type="text/plain")


urlpatterns = [
    path("search/", search),
    path("form/", form),
    path("hello/", hello),
]

application = get_wsgi_application()
