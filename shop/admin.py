from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from . import models

admin.site.register(models.User, UserAdmin)

# VerificationToken is left out: the admin cannot edit composite primary keys.
for model in (
    models.Account,
    models.Session,
    models.Address,
    models.Category,
    models.Product,
    models.ProductImage,
    models.ProductVariant,
    models.CategoriesOnProducts,
    models.Order,
    models.OrderItem,
    models.Subscription,
    models.SubscriptionItem,
    models.NewsletterSubscriber,
    models.SiteSettings,
    models.SocialLink,
    models.UserActivity,
):
    admin.site.register(model)
