from django.contrib import admin
from django.urls import path
from notes import views

urlpatterns = [
    path("", views.index, name="index"),
    path("send", views.send, name="send"),
    path("stats", views.stats, name="stats"),
    path("mailbox", views.mailbox, name="mailbox"),
    path("admin/", admin.site.urls),  # sign in here (a staff user) to open the jobs dashboard at /jobs/
]
