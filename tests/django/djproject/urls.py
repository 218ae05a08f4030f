from django.http import HttpRequest, HttpResponse
from django.urls import path


def hello(request: HttpRequest) -> HttpResponse:
    return HttpResponse(f"Hello from Django ({request.path})")


urlpatterns = [path("hello", hello)]
