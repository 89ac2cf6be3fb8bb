"""The seed endpoint as a Django view, for every WSGI server (the "django-100" case).

One module, settings configured here; no middleware, no database: what is measured is Django's
request/response machinery and the server.
"""

import django
from common import CONTENT_TYPE, SEED_BODY, SMALL_BODY
from django.conf import settings

settings.configure(
    DEBUG=False,
    SECRET_KEY="benchmark-only",
    ROOT_URLCONF=__name__,
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    MIDDLEWARE=[],
    INSTALLED_APPS=[],
)
django.setup()

from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import HttpResponse  # noqa: E402
from django.urls import path  # noqa: E402


def seed(request):
    return HttpResponse(SEED_BODY, content_type=CONTENT_TYPE)


def small(request):
    return HttpResponse(SMALL_BODY, content_type=CONTENT_TYPE)


urlpatterns = [path("", seed), path("small", small)]

application = get_wsgi_application()
